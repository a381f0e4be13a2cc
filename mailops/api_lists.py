"""How every API list pages, searches and orders.

JSON fields are camelCase (as in the seed's endpoints), so `?ordering=` takes the same
camelCase names and each view maps them to model fields in `ordering_aliases`.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils.encoding import force_str
from django_filters import rest_framework as filters
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 500


class AliasOrderingFilter(OrderingFilter):
    """`?ordering=-createdAt,name`: names from the view's `ordering_aliases`; unknown names are ignored."""

    def _aliases(self, view) -> dict[str, str]:
        return getattr(view, "ordering_aliases", {}) or {}

    def get_ordering(self, request, queryset, view):
        aliases = self._aliases(view)
        raw = request.query_params.get(self.ordering_param)
        if raw and aliases:
            ordering = []
            for term in raw.split(","):
                term = term.strip()
                name = term.lstrip("-")
                if name in aliases:
                    ordering.append(("-" if term.startswith("-") else "") + aliases[name])
            if ordering:
                # A stable tie-break, so pages never repeat or skip rows.
                return [*ordering, "-pk" if ordering[0].startswith("-") else "pk"]
        return self.get_default_ordering(view)

    def get_schema_operation_parameters(self, view):
        names = sorted(self._aliases(view))
        if not names:
            return []
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "Comma-separated fields, '-' for descending: " + ", ".join(names),
                "schema": {"type": "string"},
                "example": "-" + names[0],
            }
        ]


class NulSafeSearchFilter(SearchFilter):
    """DRF's SearchFilter, refusing NUL characters, which PostgreSQL cannot compare (a 500 otherwise)."""

    def get_search_terms(self, request):
        value = request.query_params.get(self.search_param, "")
        if "\x00" in value:
            raise ValidationError({self.search_param: ["search text cannot contain NUL characters"]})
        return super().get_search_terms(request)

    def get_schema_operation_parameters(self, view):
        fields = getattr(view, "search_fields", None)
        if not fields:
            return []
        params = super().get_schema_operation_parameters(view)
        params[0]["description"] = force_str(self.search_description) + " (matches " + ", ".join(
            f.lstrip("^=@$") for f in fields
        ) + ")"
        return params


class IdFilter(filters.NumberFilter):
    """A whole-number filter bounded to what a database integer holds.

    django-filter's NumberFilter takes any decimal, and -2.4e+76 reaches SQLite as an
    integer too large to bind: a 500 instead of a 400.
    """

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", -(2**63))
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 filter whose value reaches the database in UTC.

    Python accepts offsets up to ±23:59 but PostgreSQL only ±15:59, so `-18:05` would be a
    500 there; a time that leaves the calendar once in UTC is a 400.
    """

    def filter(self, qs, value):
        if value is not None:
            try:
                value = value.astimezone(dt.UTC)
            except OverflowError:
                raise ValidationError({self.field_name: ["that date and time is out of range"]}) from None
        return super().filter(qs, value)

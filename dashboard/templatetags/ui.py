"""Small formatting filters: numbers grouped in the reader's language, money, percentages."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import template
from django.utils.formats import number_format
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def num(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return number_format(value, decimal_pos=None, force_grouping=True)


@register.filter
def money(value: Any) -> str:
    """$125 for whole amounts, $1.67 otherwise (the seed's style)."""
    if value is None:
        return "–"
    # number_format truncates, so round first.
    amount = Decimal(value).quantize(Decimal("0.01"), ROUND_HALF_UP)
    places = 0 if amount == amount.to_integral_value() else 2
    return "$" + number_format(amount, decimal_pos=places, force_grouping=True)


@register.filter
def percent(value: Any, total: Any) -> int:
    try:
        return int(round(100 * float(value) / float(total))) if float(total) > 0 else 0
    except (TypeError, ValueError):
        return 0


@register.filter
def get(mapping: Any, key: Any) -> Any:
    try:
        return mapping.get(key, 0)
    except AttributeError:
        return None


@register.filter
def breakable(value: Any) -> str:
    """Let a long a/b/c value (a warm-up schedule) wrap after its slashes instead of mid-number."""
    return mark_safe(escape(str(value)).replace("/", "/<wbr>"))

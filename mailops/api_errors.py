"""One error body for the whole API: `{"success": false, "error": "<sentence>", "fields": {...}}`.

`error` names the problem and, where the caller can fix it, how; `fields` maps each bad
input field to its messages. DomainError (a broken rule) is a 400, like bad input.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError

log = logging.getLogger(__name__)


class ErrorOut(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    error = serializers.CharField(help_text="What went wrong, in a sentence, and how to fix it when the caller can.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Each bad input field with its messages.",
    )


def _error(description: str, example: dict) -> OpenApiResponse:
    return OpenApiResponse(ErrorOut, description=description, examples=[OpenApiExample(description, value=example)])


BAD_REQUEST = _error(
    "Bad input or a broken rule",
    {"success": False, "error": "dailyLimit: Ensure this value is greater than or equal to 0.", "fields": {"dailyLimit": ["Ensure this value is greater than or equal to 0."]}},
)
NOT_FOUND = _error("No such object", {"success": False, "error": "No Server matches the given query."})
# The responses every endpoint can give besides its own.
COMMON = {
    401: _error("Not signed in", {"success": False, "error": "Authentication credentials were not provided."}),
    403: _error("Signed in as a viewer", {"success": False, "error": "Your account can only read. Ask an administrator for the operators role."}),
    429: _error("Too many requests for this token", {"success": False, "error": "Request was throttled. Expected available in 12 seconds."}),
}


def _flatten(data) -> dict:
    """DRF's nested error structures as {field: [messages]}, with nested fields dotted (capacity.emailsPerDay)."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
            for index, inner in enumerate(value):
                walk(f"{prefix}[{index}]", inner)
        elif isinstance(value, list):
            out.setdefault(prefix or "non_field_errors", []).extend(str(v) for v in value)
        else:
            out.setdefault(prefix or "non_field_errors", []).append(str(value))

    walk("", data)
    return out


# Services name fields as the models do; the API's JSON is camelCase.
FIELD_ALIASES = {"prospect_list": "list", "include_sendgrid": "includeSendGrid", "sendgrid_daily_limit": "sendGridDailyLimit"}


def api_field_name(name: str) -> str:
    if name in FIELD_ALIASES:
        return FIELD_ALIASES[name]
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def exception_handler(exc, context):
    """Every error body has `error` (a sentence) and, for bad input, `fields`."""
    if isinstance(exc, DomainError):
        body = {"success": False, "error": exc.message, **exc.extra}
        if exc.field:
            body["fields"] = {api_field_name(exc.field): [exc.message]}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, (ProtectedError, RestrictedError)):
        return Response(
            {"success": False, "error": f"still in use, so it cannot be deleted: {exc.args[0] if exc.args else exc}"},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, ValidationError):
        fields = _flatten(data if isinstance(data, dict) else {"non_field_errors": data})
        name, messages = next(iter(fields.items()), ("input", ["invalid"]))
        error = messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
        response.data = {"success": False, "error": error, "fields": fields}
    elif isinstance(data, dict) and "detail" in data:
        response.data = {"success": False, "error": str(data["detail"])}
    return response

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import DomainError

log = logging.getLogger(__name__)


def exception_handler(exc, context):
    """Every error body has `error` (a sentence) and, for bad input, `fields`."""
    if isinstance(exc, DomainError):
        body = {"success": False, "error": exc.message, **exc.extra}
        if exc.field:
            body["fields"] = {exc.field: [exc.message]}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, ValidationError):
        fields = data if isinstance(data, dict) else {"non_field_errors": data}
        first = next(iter(fields.items()), ("input", ["invalid"]))
        msg = first[1][0] if isinstance(first[1], list) and first[1] else first[1]
        response.data = {"success": False, "error": f"{first[0]}: {msg}", "fields": fields}
    elif isinstance(data, dict) and "detail" in data:
        response.data = {"success": False, "error": str(data["detail"])}
    return response

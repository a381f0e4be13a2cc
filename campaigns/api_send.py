"""POST /api/send/: one message now, the seed's `sendEmail` over HTTP.

An `Idempotency-Key` header makes retries safe: the first request with a key is
processed and its answer stored; a repeat with the same body gets that answer back and
sends nothing; a repeat with a different body is refused (422), and one that arrives
while the first is still being processed gets 409.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mailops.errors import DomainError
from mailops.permissions import IsOperatorOrReadOnly

from .models import IdempotencyKey
from .sending import send_email

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200


def _text(**kwargs: Any) -> serializers.CharField:
    # Never trim: a trailing CR/LF must reach the header check and be refused, not silently cut.
    return serializers.CharField(trim_whitespace=False, **kwargs)


class SendRequestSerializer(serializers.Serializer):
    to = _text(help_text="Recipient address, optionally with a name: `Ana <ana@example.com>`.")
    subject = _text(help_text="Subject line. CR and LF are refused.")
    html = _text(required=False, allow_blank=True, default="", help_text="HTML body.")
    text = _text(required=False, allow_blank=True, default="", help_text="Plain-text body.")
    locals()["from"] = _text(
        required=False, allow_blank=True, default="", help_text="Sender; defaults to DEFAULT_FROM_EMAIL."
    )
    replyTo = _text(required=False, allow_blank=True, default="", help_text="Reply-To address.")  # noqa: N815
    headers = serializers.DictField(
        child=_text(allow_blank=True), required=False, default=dict,
        help_text="Extra headers, e.g. {\"X-Campaign\": \"spring\"}. Names and values must be single-line.",
    )


class SendSuccessSerializer(serializers.Serializer):
    success = serializers.BooleanField(default=True)
    server = serializers.CharField(help_text="The server that took the message.")
    messageId = serializers.CharField(help_text="The Message-ID header, <…@…>.")  # noqa: N815
    ipAddress = serializers.CharField(help_text="The server's egress IP.")  # noqa: N815


class SendFailureSerializer(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    error = serializers.CharField(help_text="Why the message was not sent.")
    retryAt = serializers.DateTimeField(  # noqa: N815
        allow_null=True, help_text="When the message will be retried automatically; null when it will not be."
    )
    fields = serializers.DictField(required=False, help_text="Per-field errors for bad input.")


def _request_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _status_for(result: dict[str, Any]) -> int:
    if result.get("success"):
        return status.HTTP_200_OK
    if result.get("retryAt"):
        return status.HTTP_202_ACCEPTED  # deferred: the pipeline retries it
    return status.HTTP_502_BAD_GATEWAY  # a receiving server refused it for good


class SendView(APIView):
    # Token first so an anonymous caller gets 401 with a WWW-Authenticate challenge.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsOperatorOrReadOnly]

    @extend_schema(
        operation_id="send_email",
        summary="Send one email now",
        description=(
            "Sends one message through the pool: rotation, quotas, pacing and failover as for campaigns. "
            "200: taken by a server. 202: deferred, retried automatically at `retryAt`. "
            "502: refused for good by the receiving side. Send `Idempotency-Key` to make retries safe."
        ),
        request=SendRequestSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER, required=False,
                description="Any unique string (≤ 200 chars). A repeat with the same body returns the first "
                "answer and sends nothing.",
            )
        ],
        responses={
            200: SendSuccessSerializer,
            202: SendFailureSerializer,
            400: OpenApiResponse(SendFailureSerializer, description="Bad input, header injection or a suppressed recipient."),
            401: OpenApiResponse(description="Not authenticated."),
            403: OpenApiResponse(description="Not an operator."),
            409: OpenApiResponse(SendFailureSerializer, description="Same Idempotency-Key still being processed."),
            422: OpenApiResponse(SendFailureSerializer, description="Idempotency-Key reused with a different body."),
            502: SendFailureSerializer,
        },
        examples=[
            OpenApiExample(
                "Welcome mail",
                value={"to": "ana@example.com", "subject": "Welcome", "html": "<p>Hi Ana</p>", "text": "Hi Ana"},
                request_only=True,
            ),
            OpenApiExample(
                "Sent",
                value={"success": True, "server": "SMTP Server 2", "messageId": "<3f2a…@example.com>",
                       "ipAddress": "203.0.113.12"},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = SendRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key:
            return self._send(request, data)
        if len(key) > MAX_KEY_LENGTH:
            raise DomainError(f"{IDEMPOTENCY_HEADER} is longer than {MAX_KEY_LENGTH} characters", field=IDEMPOTENCY_HEADER)
        return self._send_once(request, data, key)

    def _send(self, request: Request, data: dict[str, Any]) -> Response:
        result = send_email(
            to=data["to"],
            subject=data["subject"],
            html=data["html"],
            text=data["text"],
            from_=data["from"] or None,
            reply_to=data["replyTo"] or None,
            headers=data["headers"],
            user=request.user,
        )
        return Response(result, status=_status_for(result))

    def _send_once(self, request: Request, data: dict[str, Any], key: str) -> Response:
        digest = _request_hash(data)
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(user=request.user, key=key, request_hash=digest)
        except IntegrityError:
            return self._replay(request, key, digest)
        try:
            response = self._send(request, data)
        except DomainError:
            # Nothing was sent: the key stays free for a corrected request.
            record.delete()
            raise
        except Exception:
            log.exception("send with %s %r failed unexpectedly", IDEMPOTENCY_HEADER, key)
            # The message may exist and be retried by the pipeline: never let this key send it twice.
            IdempotencyKey.objects.filter(pk=record.pk).update(
                response={"success": False, "error": "internal error; the message may still be delivered by a retry",
                          "retryAt": None},
                status_code=500,
            )
            raise
        IdempotencyKey.objects.filter(pk=record.pk).update(response=response.data, status_code=response.status_code)
        return response

    def _replay(self, request: Request, key: str, digest: str) -> Response:
        record = IdempotencyKey.objects.get(user=request.user, key=key)
        if record.request_hash != digest:
            return Response(
                {"success": False, "error": f"{IDEMPOTENCY_HEADER} {key!r} was already used with a different "
                 "request body; use a new key for a new message"},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        if record.status_code is None:
            return Response(
                {"success": False, "error": f"a request with {IDEMPOTENCY_HEADER} {key!r} is still being "
                 "processed; retry in a moment"},
                status=status.HTTP_409_CONFLICT,
            )
        response = Response(record.response, status=record.status_code)
        response["Idempotent-Replayed"] = "true"
        return response

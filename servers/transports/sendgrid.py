"""Sending through SendGrid's v3 mail send API.

There is no connection to keep open: every message is one HTTPS POST to
`{api_host}/v3/mail/send`. The message id rides along as a custom arg
(`MESSAGE_ID_ARG`), which SendGrid copies into every event webhook, so delivery
events can be matched back to the message.

What a failure means depends on whether SendGrid can have taken the message. A request
that could not be sent (refused, TLS, DNS) is a SERVER failure, safe to send elsewhere.
A request sent whose response never came is UNKNOWN and is never resent, exactly like
an SMTP reply lost after DATA.
"""

from __future__ import annotations

import email.policy
import http.client
import json
import time
import urllib.error
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Content, CustomArg, From, Header, Mail, ReplyTo, To

from servers.outcome import Category, Outcome, Status
from servers.transports.base import (
    OutgoingMessage,
    ProbeResult,
    Transport,
    TransportConfig,
    elapsed_ms,
    server_failure,
)

MESSAGE_ID_ARG = "mailops_message_id"

# Headers SendGrid sets itself or refuses in `headers`; they travel in their own fields.
_RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "dkim-signature",
        "received",
        "x-sg-id",
        "x-sg-eid",
    }
)


def _parsed(data: bytes) -> EmailMessage | None:
    if not data:
        return None
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def _body(parsed: EmailMessage | None, subtype: str) -> str:
    if parsed is None:
        return ""
    part = parsed.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else ""


def _address[E: (From, To, ReplyTo)](cls: type[E], address: str, name: str | None) -> E:
    # Set the fields directly: the helper's own parsing turns anything without an "@"
    # into a display name and drops the address, so SendGrid could not judge it.
    result = cls()
    result.email = address
    result.name = name or None
    return result


def build_mail(message: OutgoingMessage) -> dict[str, Any]:
    """The JSON body for /v3/mail/send.

    Structured fields win; whatever is missing (subject, sender, bodies, extra headers
    such as List-Unsubscribe) is read from the rendered message in `data`.
    """
    parsed = _parsed(message.data)
    from_name, from_email = message.from_name, message.from_email
    if not from_email:
        parsed_name, parsed_email = parseaddr(str(parsed["from"] or "")) if parsed is not None else ("", "")
        from_email = parsed_email or message.envelope_from
        from_name = from_name or parsed_name
    subject = message.subject or (str(parsed["subject"] or "") if parsed is not None else "")
    text = message.text or _body(parsed, "plain")
    html = message.html or _body(parsed, "html")
    reply_to = message.reply_to or (str(parsed["reply-to"] or "") if parsed is not None else "")

    mail = Mail(
        from_email=_address(From, from_email, from_name),
        to_emails=_address(To, message.recipient, None),
        subject=subject,
    )
    # SendGrid wants text/plain before text/html; an empty message still needs a body.
    if text or not html:
        mail.add_content(Content("text/plain", text or " "))
    if html:
        mail.add_content(Content("text/html", html))
    if reply_to:
        reply_name, reply_email = parseaddr(reply_to)
        mail.reply_to = _address(ReplyTo, reply_email or reply_to, reply_name)

    headers: dict[str, str] = {}
    if parsed is not None:
        for name, value in parsed.items():
            if name.lower() not in _RESERVED_HEADERS:
                headers[name] = str(value)
    headers.update(message.headers)
    for name, value in headers.items():
        mail.add_header(Header(name, value))

    custom_args = {**message.custom_args, MESSAGE_ID_ARG: message.message_id}
    for key, value in custom_args.items():
        mail.add_custom_arg(CustomArg(key, str(value)))
    return mail.get()


def _error_text(body: bytes | str | None) -> str:
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        errors = json.loads(raw).get("errors") or []
    except (ValueError, AttributeError):
        return " ".join(raw.split())
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        message = str(error.get("message") or "").strip()
        field = error.get("field")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(p for p in parts if p) or " ".join(raw.split())


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    return None if value is None else str(value)


def _retry_after(headers: Any) -> float | None:
    reset = _header(headers, "X-RateLimit-Reset")
    if reset is not None:
        try:
            # An epoch second: the moment the rate-limit window opens again.
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    retry_after = _header(headers, "Retry-After")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    return None


def outcome_for_response(status: int, body: bytes | str | None, headers: Any) -> Outcome:
    """Map a SendGrid HTTP answer onto an Outcome; the HTTP status goes in `code`."""
    if 200 <= status < 300:
        sg_id = _header(headers, "X-Message-Id")
        text = f"accepted by SendGrid (X-Message-Id {sg_id})" if sg_id else "accepted by SendGrid"
        return Outcome(status=Status.ACCEPTED, category=Category.NONE, code=status, enhanced="", text=text)
    text = _error_text(body) or http.client.responses.get(status, "error")

    def outcome(result: Status, category: Category) -> Outcome:
        return Outcome(status=result, category=category, code=status, enhanced="", text=text)

    if status == 429:
        # The account's rate limit, not the message: like a 421, the message was not judged
        # and every further POST would meet the same limit until X-RateLimit-Reset, so it is a
        # server failure that stops the batch, carrying how long to hold the server.
        return outcome(Status.DEFERRED, Category.SERVER).with_retry_after(_retry_after(headers))
    if status in (400, 413):
        # SendGrid judged this message (bad address, too big...): sending it again
        # anywhere would be judged the same way.
        return outcome(Status.BOUNCED, Category.PERMANENT)
    # 401/403: bad or under-scoped key; 404/405: wrong api_host; 5xx: SendGrid's trouble.
    # None of it is about the message, so it waits for another server.
    return outcome(Status.DEFERRED, Category.SERVER)


class SendGridTransport(Transport):
    def __init__(self, config: TransportConfig) -> None:
        if config.kind != "sendgrid":
            raise ValueError(f"SendGridTransport needs a sendgrid config, got {config.kind!r}")
        self.config = config
        self.failed_stage = ""
        self._client: SendGridAPIClient | None = None

    def open(self) -> Outcome | None:
        if not self.config.api_key:
            self.failed_stage = "auth"
            return server_failure("auth", None, "no SendGrid API key is configured")
        if self._client is None:
            self._client = SendGridAPIClient(api_key=self.config.api_key, host=self.config.api_host)
        return None

    def send(self, message: OutgoingMessage) -> Outcome:
        failure = self.open()
        if failure is not None:
            return failure
        assert self._client is not None
        body = build_mail(message)
        timeout = self.config.connect_timeout + self.config.data_timeout
        try:
            response = self._client.client.mail.send.post(request_body=body, timeout=timeout)
        except HTTPError as exc:
            return outcome_for_response(exc.status_code, exc.body, exc.headers)
        except urllib.error.URLError as exc:
            # urllib wraps only errors raised while sending the request: nothing was taken.
            return server_failure("connect", None, f"cannot reach {self.config.api_host}: {exc.reason}")
        except (OSError, http.client.HTTPException) as exc:
            # The request went out and the answer did not come back.
            text = f"no response from SendGrid after the request was sent: {exc or type(exc).__name__}"
            return Outcome(status=Status.UNKNOWN, category=Category.UNKNOWN, code=None, enhanced="", text=text)
        return outcome_for_response(response.status_code, response.body, response.headers)

    def close(self) -> None:
        self._client = None


def probe(config: TransportConfig) -> ProbeResult:
    """An authenticated GET /v3/scopes: the key is valid and the API answers."""
    started = time.perf_counter()

    def failed(stage: str, error: str) -> ProbeResult:
        return ProbeResult(ok=False, stage_failed=stage, error=error, latency_ms=elapsed_ms(started))

    if not config.api_key:
        return failed("auth", "auth failed: no SendGrid API key is configured")
    client = SendGridAPIClient(api_key=config.api_key, host=config.api_host)
    try:
        client.client.scopes.get(timeout=config.connect_timeout + config.command_timeout)
    except HTTPError as exc:
        stage = "auth" if exc.status_code in (401, 403) else "connect"
        return failed(stage, f"{stage} failed: HTTP {exc.status_code} {_error_text(exc.body)}".strip())
    except urllib.error.URLError as exc:
        return failed("connect", f"connect failed: cannot reach {config.api_host}: {exc.reason}")
    except (OSError, http.client.HTTPException) as exc:
        return failed("connect", f"connect failed: {exc or type(exc).__name__}")
    return ProbeResult(ok=True, stage_failed="", error="", latency_ms=elapsed_ms(started))

"""What every transport takes and gives: its settings, a message, an Outcome.

Transports know nothing of Django models. The caller turns a Server row into a
TransportConfig and a Message row into an OutgoingMessage, so the transports can be
tested, benchmarked and reused on their own.

A transport carries one batch: the caller opens it, sends messages in order over the
same connection, and closes it.

    with open_transport(config) as transport:
        failure = transport.open()
        if failure is not None:
            ...  # the server is at fault (connect, TLS, auth): requeue, mark it suspect
        for message in batch:
            outcome = transport.send(message)

`send` opens the connection itself when it is not open, so calling `open` first is only
needed to tell a server failure apart before touching any message. A transport object
is for one thread: transports are synchronous, as Celery tasks are.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

from servers.classify import classify
from servers.outcome import Category, Outcome, Status

Kind = Literal["smtp", "sendgrid"]
Security = Literal["starttls", "tls", "none"]

DEFAULT_SENDGRID_HOST = "https://api.sendgrid.com"


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """How to reach one server. Secrets are kept out of repr so they never reach a log."""

    kind: Kind = "smtp"
    host: str = ""
    port: int = 587
    security: Security = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    # The egress IP to bind before connecting; "" lets the OS choose.
    source_address: str = ""
    # The name given in EHLO; "" uses this machine's fully qualified name.
    helo_name: str = ""
    api_key: str = field(default="", repr=False)
    api_host: str = DEFAULT_SENDGRID_HOST
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    # Waiting for the final reply after the message body: servers scan the content
    # then, so RFC 5321 section 4.5.3.2.6 suggests allowing up to 10 minutes.
    data_timeout: float = 120.0
    verify_tls: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("smtp", "sendgrid"):
            raise ValueError(f"kind must be 'smtp' or 'sendgrid', got {self.kind!r}")
        if self.kind == "smtp":
            if not self.host:
                raise ValueError("an SMTP transport needs a host")
            if not 0 < self.port < 65536:
                raise ValueError(f"port must be between 1 and 65535, got {self.port}")
            if self.security not in ("starttls", "tls", "none"):
                raise ValueError(f"security must be 'starttls', 'tls' or 'none', got {self.security!r}")
        elif not self.api_host:
            raise ValueError("a SendGrid transport needs an api_host")
        for name in ("connect_timeout", "command_timeout", "data_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def address(self) -> str:
        """Where the transport connects, for logs and messages (never a secret)."""
        return self.api_host if self.kind == "sendgrid" else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to one recipient.

    SMTP sends `data`, the rendered RFC 5322 message, as is. SendGrid builds its JSON
    from the structured fields; any it lacks (subject, from, bodies) it reads from `data`.
    """

    message_id: str
    envelope_from: str
    recipient: str
    data: bytes = b""
    from_email: str = ""
    from_name: str = ""
    reply_to: str = ""
    subject: str = ""
    html: str = ""
    text: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    custom_args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A health probe: `stage_failed` is "" when ok, else connect, tls, helo, auth or noop."""

    ok: bool
    stage_failed: str
    error: str
    latency_ms: float


@runtime_checkable
class Transport(Protocol):
    config: TransportConfig

    def open(self) -> Outcome | None:
        """Connect (and TLS, AUTH); None when ready, else a SERVER outcome saying why not."""
        ...

    def send(self, message: OutgoingMessage) -> Outcome:
        """Send one message; opens the connection first if needed."""
        ...

    def close(self) -> None:
        """Say goodbye and release everything; safe to call twice."""
        ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def server_failure(stage: str, code: int | None, text: str) -> Outcome:
    """The outcome of a server that could not be used (connect, tls, helo, auth).

    No message was judged, so the status is always DEFERRED whatever the reply code:
    the message goes to another server. A refusal on policy grounds (a blocklisted
    IP named at the greeting) stays POLICY so it counts against the server.
    """
    outcome = classify(code, text, stage=stage)
    category = Category.POLICY if outcome.category is Category.POLICY else Category.SERVER
    return dataclasses.replace(
        outcome, status=Status.DEFERRED, category=category, text=f"{stage} failed: {outcome.text}".strip()
    )


def open_transport(config: TransportConfig) -> Transport:
    """A transport for this config, not yet connected."""
    if config.kind == "sendgrid":
        from servers.transports.sendgrid import SendGridTransport

        return SendGridTransport(config)
    from servers.transports.smtp import SmtpTransport

    return SmtpTransport(config)


def probe(config: TransportConfig) -> ProbeResult:
    """Check that the server answers and accepts our credentials, without sending mail."""
    if config.kind == "sendgrid":
        from servers.transports import sendgrid

        return sendgrid.probe(config)
    from servers.transports import smtp

    return smtp.probe(config)


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)

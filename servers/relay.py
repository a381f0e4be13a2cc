"""A fault-injecting SMTP relay on loopback, built on aiosmtpd.

Tests and the `demorelays` command use it to stand in for the real relays of the pool.
It accepts mail and keeps every message in memory and in a maildir-like folder, and it
misbehaves on request: 4xx/5xx replies to a share of RCPTs or DATAs, dropped connections
(also after DATA, before the final reply, which makes a "lost reply"), slow replies,
AUTH, STARTTLS or implicit TLS with a self-signed certificate made at start-up, forced
replies per address, and a "down" mode that stops listening.

Every knob can be set at construction and changed at runtime from any thread. Faults
are drawn from a `random.Random(seed)`, so a seeded relay fed the same conversation
misbehaves the same way every time; `queue_faults` scripts the next transactions
exactly, which is what tests usually want.

The relay runs its own event loop in a daemon thread, so the code under test can be
plain synchronous code in the test's thread.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import ipaddress
import itertools
import logging
import os
import random
import ssl
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Security = Literal["none", "starttls", "tls"]

# Reply names that `Faults.slow_on` understands: "connect" is the greeting, "data" the
# final reply after the payload (the 354 is never delayed), the rest name the command.
REPLY_KINDS = frozenset(
    {"connect", "ehlo", "helo", "starttls", "auth", "mail", "rcpt", "data", "rset", "noop", "quit"}
)

# Texts as real receivers phrase them, so the classifier is exercised on realistic input.
DEFERRALS = (
    "451 4.7.1 Greylisted, please try again later",
    "450 4.2.1 Mailbox temporarily unavailable, try again later",
    "452 4.2.2 Mailbox full, please try again later",
    "451 4.3.0 Temporary local problem, please try again later",
)
REJECTIONS = (
    "550 5.1.1 The email account that you tried to reach does not exist",
    "550 5.7.1 Message rejected due to local policy",
    "554 5.7.1 Service unavailable; client host [127.0.0.1] blocked using zen.spamhaus.org",
    "553 5.1.3 Recipient address rejected: invalid address",
)

# A recipient whose local part starts with one of these words and a dash (say
# `bounce-42@example.test`) always gets that reply, whatever the fault settings.
LOCAL_PART_REPLIES = {
    "bounce": "550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table",
    "defer": "451 4.2.0 <{address}>: Recipient address rejected: Greylisted, try again later",
    "block": "554 5.7.1 <{address}>: Service unavailable; client host blocked using zen.spamhaus.org",
    "full": "452 4.2.2 <{address}>: Mailbox full",
}

AUTH_REQUIRED = "530 5.7.0 Authentication required"


class _QuietDeprecation(logging.Filter):
    # aiosmtpd 1.4 logs this warning itself on every successful AUTH.
    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_QuietDeprecation())


class Fault(StrEnum):
    """What the relay does to one mail transaction (MAIL FROM up to the final reply)."""

    NONE = "none"
    DEFER_RCPT = "defer-rcpt"
    REJECT_RCPT = "reject-rcpt"
    DEFER_DATA = "defer-data"
    REJECT_DATA = "reject-data"
    # The connection is cut instead of answering MAIL FROM: nothing was accepted.
    DROP = "drop"
    # The message is kept, then the connection is cut instead of sending the final
    # reply: the client cannot know the message went through.
    DROP_AFTER_DATA = "drop-after-data"


@dataclass(frozen=True, slots=True)
class Faults:
    """Shares (0.0 to 1.0) of transactions and replies that misbehave."""

    fail_4xx: float = 0.0
    fail_5xx: float = 0.0
    fail_at: Literal["rcpt", "data"] = "rcpt"
    drop: float = 0.0
    drop_after_data: float = 0.0
    slow: float = 0.0
    slow_delay: float = 2.0
    slow_on: frozenset[str] = REPLY_KINDS
    deferrals: tuple[str, ...] = DEFERRALS
    rejections: tuple[str, ...] = REJECTIONS

    def __post_init__(self) -> None:
        for name in ("fail_4xx", "fail_5xx", "drop", "drop_after_data", "slow"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be a share between 0.0 and 1.0, got {share}")
        # One draw per transaction picks at most one fault, so their shares must fit in 1.
        if self.fail_4xx + self.fail_5xx + self.drop + self.drop_after_data > 1.0 + 1e-9:
            raise ValueError("fail_4xx + fail_5xx + drop + drop_after_data must not exceed 1.0")
        if self.fail_at not in ("rcpt", "data"):
            raise ValueError(f"fail_at must be 'rcpt' or 'data', got {self.fail_at!r}")
        if self.slow_delay < 0:
            raise ValueError("slow_delay must not be negative")
        unknown = set(self.slow_on) - REPLY_KINDS
        if unknown:
            raise ValueError(f"slow_on names unknown replies {sorted(unknown)}; known: {sorted(REPLY_KINDS)}")
        if not self.deferrals or not self.rejections:
            raise ValueError("deferrals and rejections need at least one reply each")
        object.__setattr__(self, "slow_on", frozenset(self.slow_on))


class ReceivedMessage(NamedTuple):
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the demo relay only listens on loopback, not {host!r}")


@functools.cache
def _self_signed_pem() -> tuple[bytes, bytes]:
    """A certificate for localhost and 127.0.0.1, made once per process."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def self_signed_cert_pem() -> bytes:
    """The relay's certificate, for a client that wants to verify it (`cafile`)."""
    return _self_signed_pem()[0]


def _server_tls_context() -> ssl.SSLContext:
    cert_pem, key_pem = _self_signed_pem()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain only reads files; the key lives on disk just long enough to load.
    with tempfile.TemporaryDirectory(prefix="mailops-relay-tls-") as folder:
        pem = Path(folder) / "relay.pem"
        pem.write_bytes(key_pem + cert_pem)
        os.chmod(pem, 0o600)
        context.load_cert_chain(pem)
    return context


class _RelaySMTP(SMTP):
    """One client connection; carries the per-connection fault state."""

    def __init__(self, relay: Relay, **kwargs: Any) -> None:
        super().__init__(relay._hooks, **kwargs)
        self.relay = relay
        self.fault = Fault.NONE
        self.drop_now = False
        self.reply_kind = "connect"
        # Wrap the command table so push() knows which command a reply answers.
        self._smtp_methods = {
            name: self._tracking(name.lower(), method) for name, method in self._smtp_methods.items()
        }

    def _tracking(self, kind: str, method: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        async def run(arg: Any) -> None:
            self.reply_kind = kind
            await method(arg)

        return run

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        upgraded = self._original_transport is not None
        super().connection_made(transport)
        self.relay._connection_made(self, upgraded=upgraded)

    def connection_lost(self, error: Exception | None) -> None:
        self.relay._connection_lost(self)
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        if self.drop_now:
            self.drop_now = False
            if self.transport is not None:
                self.transport.abort()
            return
        text = status.decode() if isinstance(status, bytes) else status
        if self.reply_kind == "connect":
            greeting = self.relay._greeting_override()
            if greeting is not None:
                await super().push(greeting)
                if self.transport is not None:
                    self.transport.close()
                return
        if self.reply_kind in ("mail", "rcpt") and self._reader._buffer:  # type: ignore[attr-defined]
            # The client sent its next command before hearing this reply: pipelining.
            self.relay._count("pipelined")
        final_line = text[3:4] != "-"
        is_354 = text.startswith("354")
        if final_line and not is_354:
            delay = self.relay._reply_delay(self.reply_kind)
            if delay:
                await asyncio.sleep(delay)
        await super().push(status)


class _Hooks:
    """aiosmtpd handler: every decision is the relay's."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    async def handle_MAIL(
        self, server: _RelaySMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return self.relay._on_mail(server, session, envelope, address, options)

    async def handle_RCPT(
        self, server: _RelaySMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return self.relay._on_rcpt(server, envelope, address, options)

    async def handle_DATA(self, server: _RelaySMTP, session: Session, envelope: Envelope) -> str:
        return self.relay._on_data(server, envelope)

    async def handle_EHLO(
        self, server: _RelaySMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        # With a hook, aiosmtpd leaves recording the client's name to us.
        session.host_name = hostname
        if self.relay.pipelining:
            # aiosmtpd reads commands one line at a time from a stream, so it copes with
            # pipelined input; it only never says so.
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RSET(self, server: _RelaySMTP, session: Session, envelope: Envelope) -> str:
        server.fault = Fault.NONE
        self.relay._count("rsets")
        return "250 2.0.0 Ok"


@dataclass
class _Settings:
    security: Security
    require_starttls: bool
    username: str | None
    password: str | None
    faults: Faults
    overrides: dict[str, str] = field(default_factory=dict)
    greeting: str | None = None
    pipelining: bool = True


class Relay:
    """A loopback SMTP relay whose misbehaviour is under the caller's control.

        with Relay(maildir=folder, faults=Faults(fail_4xx=0.1), seed=1) as relay:
            ...  # send to 127.0.0.1:relay.port
            relay.messages, relay.counters["connections"]
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "relay",
        maildir: str | os.PathLike[str] | None = None,
        security: Security = "none",
        require_starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        faults: Faults | None = None,
        overrides: Mapping[str, str] | None = None,
        greeting: str | None = None,
        pipelining: bool = True,
        seed: int | None = None,
        memory_limit: int | None = None,
        hostname: str = "relay.mailops.test",
    ) -> None:
        _check_loopback(host)
        if security not in ("none", "starttls", "tls"):
            raise ValueError(f"security must be 'none', 'starttls' or 'tls', got {security!r}")
        self.host = host
        self.port = port
        self.name = name
        self.hostname = hostname
        self.maildir = Path(maildir) if maildir is not None else None
        self._settings = _Settings(
            security=security,
            require_starttls=require_starttls,
            username=username,
            password=password,
            faults=faults or Faults(),
            overrides={k.lower(): v for k, v in (overrides or {}).items()},
            greeting=greeting,
            pipelining=pipelining,
        )
        self._lock = threading.Lock()
        self._fault_rng = random.Random(seed)
        # Slowness draws from its own stream so it never shifts which transactions fail.
        self._slow_rng = random.Random(None if seed is None else seed + 1)
        self._scripted: deque[Fault] = deque()
        self._messages: deque[ReceivedMessage] = deque(maxlen=memory_limit)
        self._counters: Counter[str] = Counter()
        self._peers: list[str] = []
        self._helo_names: list[str] = []
        self._file_numbers = itertools.count(1)
        self._hooks = _Hooks(self)
        self._connections: set[_RelaySMTP] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tls_context: ssl.SSLContext | None = None

    # -- lifecycle (any thread) ---------------------------------------------------------

    def start(self) -> int:
        """Start listening and return the bound port."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already started")
        if self.maildir is not None:
            for sub in ("tmp", "new", "cur"):
                (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        self._tls_context = _server_tls_context()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{self.name}-loop", daemon=True)
        self._thread.start()
        try:
            self._call(self._listen())
        except BaseException:
            self.stop()
            raise
        return self.port

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            try:
                self._call(self._shutdown())
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout=10)
                loop.close()
        self._loop = None
        self._thread = None

    def __enter__(self) -> Relay:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pipelining(self) -> bool:
        with self._lock:
            return self._settings.pipelining

    def set_pipelining(self, offered: bool) -> None:
        """Offer PIPELINING (RFC 2920) in EHLO, as Postfix and most relays do, or not."""
        with self._lock:
            self._settings.pipelining = offered

    @property
    def security(self) -> Security:
        with self._lock:
            return self._settings.security

    @property
    def is_down(self) -> bool:
        return self._server is None

    def set_down(self, down: bool = True) -> None:
        """Stop listening (clients get "connection refused") and cut open sessions, or come back."""
        self._call(self._close_listener() if down else self._listen())

    # -- runtime knobs (any thread) -----------------------------------------------------

    def set_faults(self, faults: Faults | None = None, /, **changes: Any) -> Faults:
        """Replace the fault settings, or change some of them: `set_faults(drop=0.1)`."""
        with self._lock:
            base = faults if faults is not None else self._settings.faults
            self._settings.faults = replace(base, **changes) if changes else base
            return self._settings.faults

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._settings.faults

    def queue_faults(self, *faults: Fault | str) -> None:
        """Script the next transactions exactly; random draws resume once the queue is empty."""
        with self._lock:
            self._scripted.extend(Fault(f) for f in faults)

    def set_override(self, address: str, reply: str | None) -> None:
        """Force a RCPT reply for one address (`"550 5.1.1 No such user"`); None removes it."""
        with self._lock:
            if reply is None:
                self._settings.overrides.pop(address.lower(), None)
            else:
                _reply_code(reply)
                self._settings.overrides[address.lower()] = reply

    def set_overrides(self, overrides: Mapping[str, str]) -> None:
        for reply in overrides.values():
            _reply_code(reply)
        with self._lock:
            self._settings.overrides = {k.lower(): v for k, v in overrides.items()}

    def set_auth(self, username: str | None, password: str | None = None) -> None:
        """Require AUTH with these credentials from the next MAIL FROM on; None turns it off."""
        with self._lock:
            self._settings.username = username
            self._settings.password = password

    def set_greeting(self, greeting: str | None) -> None:
        """Answer new connections with this line and hang up (say `421 4.3.2 ...`); None restores."""
        if greeting is not None:
            _reply_code(greeting)
        with self._lock:
            self._settings.greeting = greeting

    def set_security(self, security: Security, *, require_starttls: bool | None = None) -> None:
        """Change the TLS mode for new connections; switching implicit TLS re-opens the port."""
        if security not in ("none", "starttls", "tls"):
            raise ValueError(f"security must be 'none', 'starttls' or 'tls', got {security!r}")
        with self._lock:
            relisten = (security == "tls") != (self._settings.security == "tls")
            self._settings.security = security
            if require_starttls is not None:
                self._settings.require_starttls = require_starttls
        if relisten and self._loop is not None and self._server is not None:
            self._call(self._close_listener())
            self._call(self._listen())

    # -- inspection (any thread) --------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def counters(self) -> Counter[str]:
        """Counts of what happened: connections, tls, auth_ok, auth_failed, messages, rsets,
        rcpt_deferred, rcpt_rejected, data_deferred, data_rejected, drops, drops_after_data,
        slow_replies, unauthenticated, greeting_refusals, and pipelined (MAIL and RCPT replies
        sent while the client's next command was already waiting)."""
        with self._lock:
            return Counter(self._counters)

    @property
    def peers(self) -> list[str]:
        """The client IP of every connection, in order."""
        with self._lock:
            return list(self._peers)

    @property
    def helo_names(self) -> list[str]:
        """The EHLO/HELO name in force at each MAIL FROM, in order."""
        with self._lock:
            return list(self._helo_names)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._counters.clear()
            self._peers.clear()
            self._helo_names.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """The messages once at least `count` have arrived; raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages
            if len(messages) >= count:
                return messages
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name} got {len(messages)} messages, expected {count}")
            time.sleep(0.01)

    # -- event-loop side ----------------------------------------------------------------

    def _call(self, coro: Awaitable[Any]) -> Any:
        if self._loop is None:
            raise RuntimeError(f"{self.name} is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is not None:
            return
        assert self._loop is not None
        with self._lock:
            implicit = self._settings.security == "tls"
        self._server = await self._loop.create_server(
            self._make_protocol,
            host=self.host,
            port=self.port,
            ssl=self._tls_context if implicit else None,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.abort()
        await server.wait_closed()

    async def _shutdown(self) -> None:
        await self._close_listener()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.abort()
        # Let aborted sessions run their connection_lost before the loop stops.
        await asyncio.sleep(0)

    def _make_protocol(self) -> _RelaySMTP:
        with self._lock:
            settings = self._settings
            starttls = settings.security == "starttls"
            require_starttls = starttls and settings.require_starttls
        return _RelaySMTP(
            self,
            hostname=self.hostname,
            ident="mailops demo relay",
            tls_context=self._tls_context if starttls else None,
            require_starttls=require_starttls,
            authenticator=self._authenticate,
            # AUTH is offered in clear only when the relay has no TLS at all (demo mode);
            # with STARTTLS it waits for the upgrade, as real submission servers do.
            auth_require_tls=starttls,
            loop=self._loop,
        )

    def _connection_made(self, connection: _RelaySMTP, *, upgraded: bool) -> None:
        if upgraded:
            self._count("tls")
            return
        self._connections.add(connection)
        peer = connection.session.peer if connection.session is not None else None
        with self._lock:
            self._counters["connections"] += 1
            self._peers.append(str(peer[0]) if isinstance(peer, tuple) else str(peer))

    def _connection_lost(self, connection: _RelaySMTP) -> None:
        self._connections.discard(connection)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def _greeting_override(self) -> str | None:
        with self._lock:
            greeting = self._settings.greeting
            if greeting is not None:
                self._counters["greeting_refusals"] += 1
            return greeting

    def _reply_delay(self, kind: str) -> float:
        with self._lock:
            faults = self._settings.faults
            if not faults.slow or kind not in faults.slow_on:
                return 0.0
            if self._slow_rng.random() >= faults.slow:
                return 0.0
            self._counters["slow_replies"] += 1
            return faults.slow_delay

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        with self._lock:
            username, password = self._settings.username, self._settings.password
        ok = (
            isinstance(auth_data, LoginPassword)
            and username is not None
            and auth_data.login == username.encode()
            and auth_data.password == (password or "").encode()
        )
        self._count("auth_ok" if ok else "auth_failed")
        # handled=False lets aiosmtpd answer a failure with "535 5.7.8 ...".
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _next_fault(self) -> Fault:
        with self._lock:
            if self._scripted:
                return self._scripted.popleft()
            faults = self._settings.faults
            roll = self._fault_rng.random()
            defer = Fault.DEFER_RCPT if faults.fail_at == "rcpt" else Fault.DEFER_DATA
            reject = Fault.REJECT_RCPT if faults.fail_at == "rcpt" else Fault.REJECT_DATA
            for share, fault in (
                (faults.drop, Fault.DROP),
                (faults.drop_after_data, Fault.DROP_AFTER_DATA),
                (faults.fail_4xx, defer),
                (faults.fail_5xx, reject),
            ):
                if roll < share:
                    return fault
                roll -= share
            return Fault.NONE

    def _pick(self, replies: tuple[str, ...]) -> str:
        with self._lock:
            return self._fault_rng.choice(replies)

    def _on_mail(
        self, server: _RelaySMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self._lock:
            auth_needed = self._settings.username is not None
            self._helo_names.append(session.host_name or "")
        if auth_needed and not session.authenticated:
            self._count("unauthenticated")
            return AUTH_REQUIRED
        server.fault = self._next_fault()
        if server.fault is Fault.DROP:
            self._count("drops")
            server.drop_now = True
            return "250 2.1.0 Ok"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    def _on_rcpt(self, server: _RelaySMTP, envelope: Envelope, address: str, options: list[str]) -> str:
        forced = self._forced_reply(address)
        if forced is not None:
            self._count("rcpt_deferred" if forced.startswith("4") else "rcpt_rejected")
            return forced
        if server.fault is Fault.DEFER_RCPT:
            self._count("rcpt_deferred")
            return self._pick(self.faults.deferrals)
        if server.fault is Fault.REJECT_RCPT:
            self._count("rcpt_rejected")
            return self._pick(self.faults.rejections)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    def _forced_reply(self, address: str) -> str | None:
        lowered = address.lower()
        with self._lock:
            reply = self._settings.overrides.get(lowered)
        if reply is None:
            local = lowered.partition("@")[0]
            word, dash, _ = local.partition("-")
            if dash:
                reply = LOCAL_PART_REPLIES.get(word)
        return reply.format(address=address) if reply is not None else None

    def _on_data(self, server: _RelaySMTP, envelope: Envelope) -> str:
        fault, server.fault = server.fault, Fault.NONE
        if fault is Fault.DEFER_DATA:
            self._count("data_deferred")
            return self._pick(self.faults.deferrals)
        if fault is Fault.REJECT_DATA:
            self._count("data_rejected")
            return self._pick(self.faults.rejections)
        data = envelope.original_content or b""
        queue_id = self._store(ReceivedMessage(envelope.mail_from or "", tuple(envelope.rcpt_tos), data))
        if fault is Fault.DROP_AFTER_DATA:
            self._count("drops_after_data")
            server.drop_now = True
        return f"250 2.0.0 Ok: queued as {queue_id}"

    def _store(self, message: ReceivedMessage) -> str:
        number = next(self._file_numbers)
        queue_id = f"{self.port}-{number:08d}"
        with self._lock:
            self._messages.append(message)
            self._counters["messages"] += 1
        if self.maildir is not None:
            self._write_maildir(queue_id, message)
        return queue_id

    def _write_maildir(self, queue_id: str, message: ReceivedMessage) -> None:
        assert self.maildir is not None
        # Maildir delivery: write under tmp/, then rename into new/ so a reader never
        # sees half a file. The envelope goes in front, as a local delivery agent puts it.
        filename = f"{time.time():.6f}.{queue_id}.{self.hostname}"
        envelope = f"Return-Path: <{message.mail_from}>\r\n" + "".join(
            f"X-Original-To: {rcpt}\r\n" for rcpt in message.rcpt_tos
        )
        tmp = self.maildir / "tmp" / filename
        tmp.write_bytes(envelope.encode("utf-8", "surrogateescape") + message.data)
        os.replace(tmp, self.maildir / "new" / filename)


def _reply_code(reply: str) -> int:
    code = reply[:3]
    if not (code.isdigit() and code[0] in "2345" and reply[3:4] in ("", " ")):
        raise ValueError(f"an SMTP reply starts with a 3-digit code and a space, got {reply!r}")
    return int(code)


def start_relays(
    count: int,
    *,
    base_port: int = 0,
    maildir: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    seed: int | None = None,
    **options: Any,
) -> list[Relay]:
    """Start `count` relays on consecutive ports (or free ports when base_port is 0).

    Relay N keeps its mail in `maildir/relay-N`. Options go to every Relay.
    """
    relays: list[Relay] = []
    try:
        for index in range(count):
            name = f"relay-{index + 1}"
            relay = Relay(
                host,
                base_port + index if base_port else 0,
                name=name,
                maildir=Path(maildir) / name if maildir is not None else None,
                seed=None if seed is None else seed + index,
                **options,
            )
            relay.start()
            relays.append(relay)
    except BaseException:
        for relay in relays:
            relay.stop()
        raise
    return relays


__all__ = [
    "DEFERRALS",
    "LOCAL_PART_REPLIES",
    "REJECTIONS",
    "Fault",
    "Faults",
    "ReceivedMessage",
    "Relay",
    "Security",
    "self_signed_cert_pem",
    "start_relays",
]

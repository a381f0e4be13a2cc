"""Sending over SMTP, behind a synchronous face.

Celery tasks are synchronous, so each SmtpTransport owns a private event loop and runs
every call to completion on it, in the caller's thread: no loop is created per message
and no thread is crossed. One connection carries the whole batch.

aiosmtplib sets the session up: connect, EHLO, STARTTLS, AUTH, where its handling of TLS
and the AUTH mechanisms earns its keep. The connection is then handed to `_Wire`, a
small protocol of our own that sends the mail transactions. It exists for two reasons:

* PIPELINING (RFC 2920). When the server offers it, MAIL, RCPT and DATA leave in one
  write and their replies are read together, so a message costs two round trips
  instead of four. aiosmtplib reads one reply per command and can lose replies that
  arrive together, so it cannot pipeline.
* Where a lost connection happened decides what it means, so the transaction is written
  out step by step:
  - before the payload was written, the relay cannot have taken the message, so the
    transport reconnects once and sends it again;
  - after the payload was written, the relay may have queued it and only its reply was
    lost. That message is UNKNOWN and is never sent again by the transport.

RSET is sent only before a transaction that follows one left unfinished (a refused RCPT
or DATA). After a final reply the server has already reset its state (RFC 5321 4.1.1.4),
so an RSET there would only cost a round trip per message.
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any

import aiosmtplib
from aiosmtplib import SMTPException, SMTPHeloError, SMTPResponseException

from servers.classify import classify
from servers.outcome import Category, Outcome, Status
from servers.transports.base import (
    OutgoingMessage,
    ProbeResult,
    Transport,
    TransportConfig,
    elapsed_ms,
    server_failure,
)

_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
_ENHANCED_PREFIX = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)")
# A reply line longer than this is not SMTP (RFC 5321 allows 512 octets).
_MAX_REPLY_BUFFER = 64 * 1024


class _Disconnected(ConnectionError):
    def __init__(self, text: str, received: list[tuple[int, str]] | None = None) -> None:
        super().__init__(text)
        # Replies that did arrive before the connection went, in order.
        self.received = received or []


class _Timeout(TimeoutError):
    def __init__(self, text: str, received: list[tuple[int, str]] | None = None) -> None:
        super().__init__(text)
        self.received = received or []


_STAGES = ("mail", "rcpt", "data")
_EXPECTED = ((250,), (250, 251), (354,))


# What can go wrong on the wire, short of a reply: aiosmtplib's errors, ours, the OS's,
# TLS errors (OSError subclasses) and timeouts.
_WIRE_ERRORS = (SMTPException, OSError, asyncio.TimeoutError)


@functools.cache
def _local_hostname() -> str:
    # aiosmtplib would look this up on a worker thread at every connect.
    return socket.getfqdn()


def encode_payload(data: bytes) -> bytes:
    """The DATA payload: CRLF line endings, dot-stuffed (RFC 5321 4.5.2), end marker."""
    # Rendered messages are usually CRLF already and rarely have a line starting with a
    # dot; counting is much cheaper than a regex pass over every message.
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = _BARE_LINE_END.sub(b"\r\n", data)
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, asyncio.TimeoutError) and not text:
        text = "timed out"
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}" if text else str(cause)
    return text or type(exc).__name__


def _outcome(code: int, text: str, stage: str) -> Outcome:
    if 200 <= code < 300:
        # The common case, without the full classifier: a 2xx needs no judgement.
        match = _ENHANCED_PREFIX.match(text)
        enhanced = match.group(1) if match else ""
        rest = text[match.end() :] if match else text
        return Outcome(status=Status.ACCEPTED, category=Category.NONE, code=code, enhanced=enhanced, text=" ".join(rest.split()))
    return classify(code, text, stage=stage)


class _Wire(asyncio.Protocol):
    """Writes commands and reads replies, any number of them at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._replies: deque[tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0
        self._error: Exception | None = None

    @property
    def usable(self) -> bool:
        return self._error is None and self.transport is not None and not self.transport.is_closing()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._parse()
        self._wake()

    def eof_received(self) -> bool:
        self._fail(_Disconnected("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(_Disconnected(f"connection lost: {exc}" if exc else "connection lost"))
        self.transport = None

    # -- ours ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.usable:
            raise self._error or _Disconnected("connection lost")
        assert self.transport is not None
        self.transport.write(data)

    async def replies(self, count: int, timeout: float) -> list[tuple[int, str]]:
        """The next `count` replies, as (code, text)."""
        if len(self._replies) < count and self._error is None:
            self._waiter = self.loop.create_future()
            self._wanted = count
            timer = self.loop.call_later(timeout, self._expire, self._waiter, timeout)
            try:
                await self._waiter
            except _Timeout as exc:
                raise _Timeout(str(exc), self._take_all()) from None
            finally:
                timer.cancel()
                self._waiter = None
        if len(self._replies) < count:
            raise _Disconnected(str(self._error or "connection lost"), self._take_all())
        return [self._replies.popleft() for _ in range(count)]

    def _take_all(self) -> list[tuple[int, str]]:
        received = list(self._replies)
        self._replies.clear()
        return received

    async def command(self, line: bytes, timeout: float) -> tuple[int, str]:
        self.write(line + b"\r\n")
        [reply] = await self.replies(1, timeout)
        return reply

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._fail(_Disconnected("connection closed by us"))

    def _parse(self) -> None:
        buffer = self._buffer
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:end]).rstrip(b"\r")
            start = end + 1
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in (b"", b" ", b"-"):
                self._fail(_Disconnected(f"malformed reply from the server: {line[:80]!r}"))
                self.abort()
                return
            self._lines.append(line[4:].decode("utf-8", "surrogateescape").strip())
            if line[3:4] != b"-":
                self._replies.append((int(line[:3]), "\n".join(self._lines)))
                self._lines = []
        del buffer[:start]
        if len(buffer) > _MAX_REPLY_BUFFER:
            self._fail(_Disconnected("the server sent an over-long reply line"))
            self.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (len(self._replies) >= self._wanted or self._error):
            waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _expire(self, waiter: asyncio.Future[None], timeout: float) -> None:
        if not waiter.done():
            waiter.set_exception(_Timeout(f"no reply within {timeout:g}s"))


class _Client(aiosmtplib.SMTP):
    """aiosmtplib's client, hanging up by abort rather than close.

    A graceful close keeps the socket until the peer acknowledges (for TLS, its
    close_notify); a batch's private loop may be closed before that, leaking the socket.
    """

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        super().close()


class SmtpTransport(Transport):
    def __init__(self, config: TransportConfig) -> None:
        if config.kind != "smtp":
            raise ValueError(f"SmtpTransport needs an smtp config, got {config.kind!r}")
        self.config = config
        # The stage of the last failed open(): connect, tls, helo or auth.
        self.failed_stage = ""
        self._loop = asyncio.new_event_loop()
        self._wire: _Wire | None = None
        self._extensions: frozenset[str] = frozenset()
        # True while a transaction is left unfinished on the server and needs an RSET.
        self._unfinished = False
        self._closed = False

    # -- synchronous face ----------------------------------------------------------------

    def open(self) -> Outcome | None:
        if self.connected:
            return None
        return self._run(self._connect())

    def send(self, message: OutgoingMessage) -> Outcome:
        return self._run(self._send(message))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not _loop_running():
                self._loop.run_until_complete(self._quit())
            elif self._wire is not None:
                self._wire.abort()
        finally:
            self._loop.close()

    @property
    def connected(self) -> bool:
        return self._wire is not None and self._wire.usable

    @property
    def pipelining(self) -> bool:
        return "pipelining" in self._extensions

    def _run[T](self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("this transport is closed; open a new one")
        if _loop_running():
            coro.close()
            raise RuntimeError(
                "SmtpTransport is synchronous and runs its own event loop; call it from a thread "
                "with no running loop (in async code, wrap the batch in asgiref's sync_to_async)"
            )
        return self._loop.run_until_complete(coro)

    # -- connection ----------------------------------------------------------------------

    async def _connect(self) -> Outcome | None:
        config = self.config
        await self._discard()
        self.failed_stage = ""
        client = _Client(
            hostname=config.host,
            port=config.port,
            local_hostname=config.helo_name or _local_hostname(),
            source_address=(config.source_address, 0) if config.source_address else None,
            timeout=config.command_timeout,
            use_tls=config.security == "tls",
            start_tls=False,
            validate_certs=config.verify_tls,
        )
        stage = "connect"
        try:
            await client.connect(timeout=config.connect_timeout)
            stage = "helo"
            await self._hello(client)
            if config.security == "starttls":
                stage = "tls"
                if not client.supports_extension("starttls"):
                    # Never fall back to clear text when TLS was asked for.
                    await _hang_up(client)
                    return self._open_failed(stage, None, "the server does not offer STARTTLS")
                await client.starttls()
                stage = "helo"
                await self._hello(client)
            if config.username:
                stage = "auth"
                await client.login(config.username, config.password)
        except SMTPResponseException as exc:
            await _hang_up(client)
            return self._open_failed(stage, exc.code, exc.message)
        except _WIRE_ERRORS as exc:
            await _hang_up(client)
            if stage == "connect" and config.security == "tls" and isinstance(exc.__cause__, ssl.SSLError):
                stage = "tls"
            return self._open_failed(stage, None, _describe(exc))
        self._take_over(client)
        return None

    def _take_over(self, client: aiosmtplib.SMTP) -> None:
        """Move the set-up session from aiosmtplib's protocol to ours."""
        transport = client.transport
        assert isinstance(transport, asyncio.Transport)
        wire = _Wire(self._loop)
        transport.set_protocol(wire)
        wire.connection_made(transport)
        self._extensions = frozenset(client.esmtp_extensions)
        self._wire = wire
        self._unfinished = False

    async def _hello(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.ehlo()
        except SMTPHeloError:
            # An old server without ESMTP is fine as long as nothing needs extensions.
            if self.config.security == "starttls" or self.config.username or not client.is_connected:
                raise
            await client.helo()

    def _open_failed(self, stage: str, code: int | None, text: str) -> Outcome:
        self.failed_stage = stage
        return server_failure(stage, code, text)

    async def _discard(self) -> None:
        """Drop the connection without a goodbye: its state can no longer be trusted."""
        wire, self._wire = self._wire, None
        self._unfinished = False
        if wire is not None:
            wire.abort()
            # One turn of the loop runs the transport's connection_lost, freeing the socket.
            await asyncio.sleep(0)

    async def _quit(self) -> None:
        wire = self._wire
        if wire is not None and wire.usable:
            try:
                await wire.command(b"QUIT", self.config.command_timeout)
            except _WIRE_ERRORS:
                pass
        await self._discard()

    # -- sending -------------------------------------------------------------------------

    async def _send(self, message: OutgoingMessage) -> Outcome:
        if not self.connected:
            failure = await self._connect()
            if failure is not None:
                return failure
        outcome, retry = await self._transaction(message)
        if retry:
            # The connection died before the relay could have taken the message (an
            # idle connection closed by the server, a reset): one fresh try.
            failure = await self._connect()
            if failure is not None:
                return failure
            outcome, _ = await self._transaction(message)
        return outcome

    async def _transaction(self, message: OutgoingMessage) -> tuple[Outcome, bool]:
        """One mail transaction; the flag says the message may safely be sent again."""
        wire = self._wire
        assert wire is not None
        config = self.config
        timeout = config.command_timeout
        stage = "mail"
        payload_sent = False
        try:
            commands = self._commands(message)
        except UnicodeEncodeError:
            return _no_smtputf8(), False
        try:
            if self._unfinished:
                await wire.command(b"RSET", timeout)
            # Until the final reply, a failure leaves the transaction open.
            self._unfinished = True
            if self.pipelining:
                wire.write(b"".join(line + b"\r\n" for line in commands))
                envelope = await wire.replies(3, timeout)
            else:
                envelope = []
                for command, stage, expected in zip(commands, _STAGES, _EXPECTED):
                    envelope.append(await wire.command(command, timeout))
                    if envelope[-1][0] not in expected:
                        break
            refusal = _first_refusal(envelope)
            if refusal is not None:
                if len(envelope) == 3 and envelope[2][0] == 354:
                    # A server that said 354 despite refusing the envelope waits for a
                    # body; an empty one ends the transaction without delivering anything.
                    await wire.command(b".", timeout)
                return self._answered(*refusal), False
            stage = "data"
            wire.write(encode_payload(message.data))
            payload_sent = True
            [final] = await wire.replies(1, config.data_timeout)
            # Whatever the final reply, the transaction is over on the server's side.
            self._unfinished = False
            return self._answered(final, "data"), False
        except (_Disconnected, _Timeout) as exc:
            await self._discard()
            if payload_sent:
                return classify(None, f"no reply after the message was sent: {exc}", stage="data"), False
            refusal = _first_refusal(exc.received)
            if refusal is not None:
                # The server said no, then hung up (a 421 usually): its word stands.
                return _outcome(*refusal[0], refusal[1]), False
            if self.pipelining and len(exc.received) < 3:
                stage = _STAGES[len(exc.received)]
            if isinstance(exc, _Timeout):
                # A slow server stays slow: no instant retry, the message is deferred.
                return _no_reply(f"no reply to {stage.upper()} within {timeout:g}s"), False
            return _no_reply(f"connection lost at {stage.upper()}: {exc}"), True
        except _WIRE_ERRORS as exc:
            await self._discard()
            if payload_sent:
                return classify(None, f"no reply after the message was sent: {_describe(exc)}", stage="data"), False
            return _no_reply(f"connection lost at {stage.upper()}: {_describe(exc)}"), True

    def _answered(self, reply: tuple[int, str], stage: str) -> Outcome:
        code, text = reply
        if code == 421 and self._wire is not None:
            # "Service closing transmission channel": the server hangs up after this.
            self._wire.abort()
        return _outcome(code, text, stage)

    def _commands(self, message: OutgoingMessage) -> tuple[bytes, bytes, bytes]:
        mail_options = b""
        if not message.data.isascii() and "8bitmime" in self._extensions:
            mail_options += b" BODY=8BITMIME"
        if "size" in self._extensions:
            # Lets the server refuse an oversized message before the payload is sent.
            mail_options += b" SIZE=%d" % len(message.data)
        try:
            sender, recipient = message.envelope_from.encode("ascii"), message.recipient.encode("ascii")
        except UnicodeEncodeError:
            if "smtputf8" not in self._extensions:
                raise
            sender, recipient = message.envelope_from.encode(), message.recipient.encode()
            mail_options += b" SMTPUTF8"
        return b"MAIL FROM:<" + sender + b">" + mail_options, b"RCPT TO:<" + recipient + b">", b"DATA"

    # -- health --------------------------------------------------------------------------

    async def _probe(self) -> ProbeResult:
        started = time.perf_counter()
        failure = await self._connect()
        if failure is not None:
            return ProbeResult(
                ok=False, stage_failed=self.failed_stage, error=failure.summary, latency_ms=elapsed_ms(started)
            )
        wire = self._wire
        assert wire is not None
        try:
            code, text = await wire.command(b"NOOP", self.config.command_timeout)
            error = "" if code == 250 else f"{code} {text}"
        except _WIRE_ERRORS as exc:
            error = _describe(exc)
            await self._discard()
        latency = elapsed_ms(started)
        await self._quit()
        if error:
            return ProbeResult(ok=False, stage_failed="noop", error=f"noop failed: {error}", latency_ms=latency)
        return ProbeResult(ok=True, stage_failed="", error="", latency_ms=latency)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def _hang_up(client: aiosmtplib.SMTP) -> None:
    client.close()
    # One turn of the loop runs the transport's connection_lost, which frees the socket.
    await asyncio.sleep(0)


def _first_refusal(replies: list[tuple[int, str]]) -> tuple[tuple[int, str], str] | None:
    """The first envelope reply (MAIL, RCPT, DATA in order) that is not a go-ahead."""
    for reply, stage, expected in zip(replies, _STAGES, _EXPECTED):
        if reply[0] not in expected:
            return reply, stage
    return None


def _no_reply(text: str) -> Outcome:
    # Before the payload, no reply means the server failed, never the message.
    return Outcome(status=Status.DEFERRED, category=Category.SERVER, code=None, enhanced="", text=text)


def _no_smtputf8() -> Outcome:
    return Outcome(
        status=Status.BOUNCED,
        category=Category.PERMANENT,
        code=None,
        enhanced="",
        text="the address needs SMTPUTF8, which this server does not offer",
    )


def probe(config: TransportConfig) -> ProbeResult:
    """Connect, EHLO, STARTTLS and AUTH as configured, NOOP, QUIT."""
    transport = SmtpTransport(config)
    try:
        return transport._run(transport._probe())
    finally:
        transport.close()

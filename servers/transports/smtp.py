"""Sending over SMTP with aiosmtplib, behind a synchronous face.

Celery tasks are synchronous, so each SmtpTransport owns a private event loop and runs
every call to completion on it, in the caller's thread: no loop is created per message
and no thread is crossed. One connection carries the whole batch.

Each message is one transaction, MAIL, RCPT, DATA and the payload, one command at a
time. The transaction is written out here rather than with aiosmtplib's `sendmail`
because what a lost connection means depends on exactly where it was lost:

* before the payload was written, the relay cannot have taken the message, so the
  transport reconnects once and sends it again;
* after the payload was written, the relay may have queued it and only its reply was
  lost. That message is UNKNOWN and is never sent again by the transport.

RSET is sent only before a transaction that follows one left open (a refused RCPT or
DATA). After a final reply the server has already reset its state (RFC 5321 4.1.1.4),
so an RSET there would only cost a round trip per message.
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import ssl
import time
from collections.abc import Coroutine
from typing import Any

import aiosmtplib
from aiosmtplib import SMTPException, SMTPHeloError, SMTPResponseException, SMTPServerDisconnected

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

_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)

# What can go wrong on the wire, short of a reply: aiosmtplib's own errors, the OS's,
# TLS errors (OSError subclasses) and timeouts.
_WIRE_ERRORS = (SMTPException, OSError, asyncio.TimeoutError)


@functools.cache
def _local_hostname() -> str:
    # aiosmtplib would look this up on a worker thread at every connect.
    return socket.getfqdn()


def encode_payload(data: bytes) -> bytes:
    """The DATA payload: CRLF line endings, dot-stuffed (RFC 5321 4.5.2), end marker."""
    payload = _LEADING_DOT.sub(b"..", _LINE_END.sub(b"\r\n", data))
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    return payload + b".\r\n"


class _Client(aiosmtplib.SMTP):
    """aiosmtplib's client, hanging up by abort rather than close.

    A graceful close keeps the socket until the peer acknowledges (for TLS, its
    close_notify); a batch's private loop may be closed before that, leaking the socket.
    Every path that ends a connection (QUIT, a 421, a lost connection, a failed
    connect) goes through close(), so this is the one place to change it.
    """

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        super().close()


async def _hang_up(client: aiosmtplib.SMTP) -> None:
    client.close()
    # One turn of the loop runs the transport's connection_lost, which frees the socket.
    await asyncio.sleep(0)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, asyncio.TimeoutError) and not text:
        text = "timed out"
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}" if text else str(cause)
    return text or type(exc).__name__


class SmtpTransport(Transport):
    def __init__(self, config: TransportConfig) -> None:
        if config.kind != "smtp":
            raise ValueError(f"SmtpTransport needs an smtp config, got {config.kind!r}")
        self.config = config
        # The stage of the last failed open(): connect, tls, helo or auth.
        self.failed_stage = ""
        self._loop = asyncio.new_event_loop()
        self._client: aiosmtplib.SMTP | None = None
        # True while a transaction is left open on the server and needs an RSET.
        self._open_transaction = False
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
            self._loop.run_until_complete(self._quit())
        finally:
            self._loop.close()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    def _run[T](self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("this transport is closed; open a new one")
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
        self._client = client
        return None

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
        client, self._client = self._client, None
        self._open_transaction = False
        if client is not None:
            await _hang_up(client)

    async def _quit(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            if client.is_connected:
                await client.quit()
        except _WIRE_ERRORS:
            pass
        finally:
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
        client = self._client
        assert client is not None
        config = self.config
        stage = "mail"
        payload_sent = False
        try:
            sender, recipient, mail_options = self._envelope(client, message)
            payload = encode_payload(message.data)
            if self._open_transaction:
                await client.execute_command(b"RSET")
                self._open_transaction = False
            if client.supports_extension("size"):
                mail_options.append(b"SIZE=%d" % len(payload))
            reply = await client.execute_command(b"MAIL", b"FROM:<" + sender + b">", *mail_options)
            if reply.code != 250:
                return await self._from_reply(reply.code, reply.message, "mail"), False
            self._open_transaction = True
            stage = "rcpt"
            reply = await client.execute_command(b"RCPT", b"TO:<" + recipient + b">")
            if reply.code not in (250, 251):
                return await self._from_reply(reply.code, reply.message, "rcpt"), False
            stage = "data"
            reply = await client.execute_command(b"DATA")
            if reply.code != 354:
                return await self._from_reply(reply.code, reply.message, "data"), False
            protocol = client.protocol
            if protocol is None:
                raise SMTPServerDisconnected("Connection lost")
            protocol.write(payload)
            payload_sent = True
            reply = await protocol.read_response(timeout=config.data_timeout)
            # Whatever the final reply, the transaction is over on the server's side.
            self._open_transaction = False
            return await self._from_reply(reply.code, reply.message, "data"), False
        except UnicodeEncodeError:
            return (
                Outcome(
                    status=Status.BOUNCED,
                    category=Category.PERMANENT,
                    code=None,
                    enhanced="",
                    text="the address needs SMTPUTF8, which this server does not offer",
                ),
                False,
            )
        except _WIRE_ERRORS as exc:
            await self._discard()
            timed_out = isinstance(exc, asyncio.TimeoutError)
            if payload_sent:
                waited = f" within {config.data_timeout:g}s" if timed_out else ""
                text = f"no reply after the message was sent{waited}: {_describe(exc)}"
                return classify(None, text, stage="data"), False
            if timed_out:
                # A slow server stays slow: no instant retry, the message is deferred.
                text = f"no reply to {stage.upper()} within {config.command_timeout:g}s"
                return self._no_reply(text), False
            return self._no_reply(f"connection lost at {stage.upper()}: {_describe(exc)}"), True

    async def _from_reply(self, code: int, text: str, stage: str) -> Outcome:
        if code == 421:
            # "Service closing transmission channel": the server hangs up after this.
            await self._discard()
        return classify(code, text, stage=stage)

    @staticmethod
    def _no_reply(text: str) -> Outcome:
        # Before the payload, no reply means the server failed, never the message.
        return Outcome(status=Status.DEFERRED, category=Category.SERVER, code=None, enhanced="", text=text)

    @staticmethod
    def _envelope(client: aiosmtplib.SMTP, message: OutgoingMessage) -> tuple[bytes, bytes, list[bytes]]:
        options: list[bytes] = []
        if not message.data.isascii() and client.supports_extension("8bitmime"):
            options.append(b"BODY=8BITMIME")
        try:
            return message.envelope_from.encode("ascii"), message.recipient.encode("ascii"), options
        except UnicodeEncodeError:
            if not client.supports_extension("smtputf8"):
                raise
            options.append(b"SMTPUTF8")
            return message.envelope_from.encode(), message.recipient.encode(), options

    # -- health --------------------------------------------------------------------------

    async def _probe(self) -> ProbeResult:
        started = time.perf_counter()
        failure = await self._connect()
        if failure is not None:
            return ProbeResult(
                ok=False, stage_failed=self.failed_stage, error=failure.summary, latency_ms=elapsed_ms(started)
            )
        client = self._client
        assert client is not None
        try:
            reply = await client.noop()
            error = "" if reply.code == 250 else f"{reply.code} {reply.message}"
        except SMTPResponseException as exc:
            error = f"{exc.code} {exc.message}"
        except _WIRE_ERRORS as exc:
            error = _describe(exc)
            await self._discard()
        latency = elapsed_ms(started)
        await self._quit()
        if error:
            return ProbeResult(ok=False, stage_failed="noop", error=f"noop failed: {error}", latency_ms=latency)
        return ProbeResult(ok=True, stage_failed="", error="", latency_ms=latency)


def probe(config: TransportConfig) -> ProbeResult:
    """Connect, EHLO, STARTTLS and AUTH as configured, NOOP, QUIT."""
    transport = SmtpTransport(config)
    try:
        return transport._run(transport._probe())
    finally:
        transport.close()

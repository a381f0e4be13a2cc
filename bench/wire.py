"""A minimal blocking SMTP client for the benchmark's ceilings: no Django, no asyncio, no parsing beyond reply codes.

Two ways of sending, both over one reused connection:

* `send_grouped` is what a PIPELINING client may do by RFC 2920: a message's payload
  ends one command group and starts the next, so `<payload> MAIL RCPT DATA` leave in
  one write and each message costs one round trip. This is the raw ceiling's client.
* `blast` does not wait for the 354 before the payload. Real servers would refuse it; the
  bench sink tolerates it, which lets the harness measure how much the sink itself can
  absorb (its ceiling) without the client's round trips in the way.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable


class WireError(RuntimeError):
    pass


class Connection:
    def __init__(self, host: str, port: int, *, timeout: float = 30.0, helo: str = "bench.localhost") -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb", buffering=1 << 16)
        self._expect(220)
        self.sock.sendall(f"EHLO {helo}\r\n".encode())
        self._expect(250)

    def _reply(self) -> int:
        """Read one (possibly multi-line) reply and return its code."""
        while True:
            line = self.reader.readline()
            if len(line) < 4:
                raise WireError(f"connection closed or short reply: {line!r}")
            if line[3:4] != b"-":
                return int(line[:3])

    def _expect(self, code: int) -> None:
        got = self._reply()
        if got != code:
            raise WireError(f"expected {code}, got {got}")

    def send_grouped(self, sender: bytes, recipients: Iterable[bytes], payload: bytes) -> int:
        """Send `payload` (already dot-stuffed and ending in CRLF.CRLF) to each recipient in turn, one round trip each."""
        sent = 0
        pending = b""
        for rcpt in recipients:
            self.sock.sendall(pending + b"MAIL FROM:<" + sender + b">\r\nRCPT TO:<" + rcpt + b">\r\nDATA\r\n")
            if pending:
                self._expect(250)  # the previous message's final reply
                sent += 1
            self._expect(250)
            self._expect(250)
            self._expect(354)
            pending = payload
        if pending:
            self.sock.sendall(pending)
            self._expect(250)
            sent += 1
        return sent

    def blast(self, sender: bytes, recipient: bytes, payload: bytes, count: int, *, window: int = 64) -> int:
        """Stream whole transactions `window` at a time without waiting for 354 (sink-only)."""
        transaction = b"MAIL FROM:<" + sender + b">\r\nRCPT TO:<" + recipient + b">\r\nDATA\r\n" + payload
        sent = 0
        while sent < count:
            n = min(window, count - sent)
            self.sock.sendall(transaction * n)
            for _ in range(n * 4):
                code = self._reply()
                if code >= 400:
                    raise WireError(f"sink refused with {code}")
            sent += n
        return sent

    def close(self) -> None:
        try:
            self.sock.sendall(b"QUIT\r\n")
            self._reply()
        except (OSError, WireError):
            pass
        finally:
            self.reader.close()
            self.sock.close()


def stuff(data: bytes) -> bytes:
    """CRLF line ends, leading dots doubled and the end marker: the DATA payload (RFC 5321 4.5.2)."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    body = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    return body + b"\r\n.\r\n"

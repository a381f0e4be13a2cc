"""A real HTTP server on loopback standing in for SendGrid's API host.

It records every request (method, path, headers, body) and answers like SendGrid:
POST /v3/mail/send gets 202 with an X-Message-Id, GET /v3/scopes gets 200 when the
bearer key matches and 401 otherwise, and any request with the wrong key gets 401.
Tests script other answers with `queue(...)` (one per request, in order) or change the
default with `set_default(...)`.

    def test_it_sends(sendgrid_api):
        sendgrid_api.queue(Reply(429, headers={"X-RateLimit-Reset": "1700000060"}))
        transport = SendGridTransport(sendgrid_config(sendgrid_api))
        ...
        assert sendgrid_api.requests[0].json["subject"] == "Hi"

Make the fixture available in a conftest with:

    from tests.support.sendgrid_server import sendgrid_api  # noqa: F401
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from servers.transports.base import TransportConfig

DEFAULT_KEY = "SG.test-key.loopback-only"
UNAUTHORIZED = {"errors": [{"field": None, "message": "The provided authorization grant is invalid, expired, or revoked"}]}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `drop` closes the connection without answering (a lost
    response); `delay` waits before answering."""

    status: int = 202
    body: bytes | str | Mapping[str, Any] | list[Any] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False

    def encoded_body(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


class FakeSendGrid:
    def __init__(self, api_key: str = DEFAULT_KEY, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self.host = host
        self.port = 0
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queued: deque[Reply] = deque()
        self._default = Reply(202)
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def sends(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v3/mail/send"]

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._queued.extend(replies)

    def set_default(self, reply: Reply) -> None:
        with self._lock:
            self._default = reply

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        # A short poll keeps stop() quick; shutdown() waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-sendgrid", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSendGrid:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path.split("?", 1)[0]
        request = RecordedRequest(handler.command, path, dict(handler.headers.items()), body)
        authorized = handler.headers.get("Authorization") == f"Bearer {self.api_key}"
        with self._lock:
            self._requests.append(request)
            scripted = self._queued.popleft() if self._queued and path != "/v3/scopes" else None
            default = self._default
        if scripted is not None:
            reply = scripted
        elif not authorized:
            reply = Reply(401, UNAUTHORIZED)
        elif path == "/v3/scopes" and handler.command == "GET":
            reply = Reply(200, {"scopes": ["mail.send"]})
        elif path == "/v3/mail/send" and handler.command == "POST":
            reply = default
        else:
            reply = Reply(404, {"errors": [{"field": None, "message": "resource not found"}]})
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            handler.close_connection = True
            handler.connection.close()
            return
        payload = reply.encoded_body()
        handler.send_response(reply.status)
        headers = dict(reply.headers)
        if 200 <= reply.status < 300 and path == "/v3/mail/send":
            headers.setdefault("X-Message-Id", f"fake-sg-{next(self._ids):06d}")
        if payload:
            headers.setdefault("Content-Type", "application/json")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def sendgrid_config(api: FakeSendGrid, **changes: Any) -> TransportConfig:
    settings: dict[str, Any] = {
        "kind": "sendgrid",
        "api_key": api.api_key,
        "api_host": api.url,
        "connect_timeout": 3.0,
        "command_timeout": 3.0,
        "data_timeout": 3.0,
    }
    settings.update(changes)
    return TransportConfig(**settings)


@pytest.fixture
def sendgrid_api() -> Iterator[FakeSendGrid]:
    with FakeSendGrid() as api:
        yield api

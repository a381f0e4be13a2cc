"""schemathesis against /api/schema/: no input makes the API answer 5xx.

Every operation in the schema gets a bounded number of generated requests (valid and
invalid), sent in-process through the WSGI application with an operator's token. Half the
cases aim their path ids at real objects so the handlers behind a 404 are exercised too.
A socket guard keeps every connection a handler makes (health checks, sends, DNS) on
loopback, whatever host a generated server has.

Runs in CI with the rest of `make test` (marker `fuzz`); about a minute. Set
SCHEMATHESIS_MAX_EXAMPLES to dig deeper locally, SCHEMATHESIS_RANDOM=1 for fresh inputs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket

import hypothesis
import pytest
import schemathesis
from django.contrib.auth.models import Group
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode

from campaigns.models import Campaign, ImportJob, ImportRowError, Prospect, ProspectList, Suppression
from servers import configuration
from servers.models import Alert, Server, ServerKind, ServerState

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

PK = 900001
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15"))


def _operations() -> list[str]:
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return [f"{method.upper()} {path}" for path, item in paths.items() for method in item if method != "parameters"]


OPERATIONS = _operations()
_schema_text: dict[str, str] = {}


# --- keep every connection on loopback --------------------------------------------------------


def _loopback(host: object) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Refuse, like a firewall would, any connection or name lookup that would leave the machine."""
    real_getaddrinfo, real_connect, real_connect_ex, real_sendto = (
        socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto,
    )

    def refuse(host: object) -> None:
        raise OSError(f"test guard: no traffic to {host!r} (loopback only)")

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _loopback(host if isinstance(host, str) else host.decode()):
            refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def check(address) -> None:
        if isinstance(address, tuple) and not _loopback(address[0]):
            refuse(address[0])

    def connect(self, address):
        check(address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(address)
        return real_connect_ex(self, address)

    def sendto(self, data, *args):
        check(args[-1])
        return real_sendto(self, data, *args)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)


def test_the_guard_refuses_traffic_that_would_leave_the_machine():
    with pytest.raises(OSError, match="loopback only"):
        socket.create_connection(("192.0.2.1", 25), timeout=1)
    with pytest.raises(OSError, match="loopback only"):
        socket.getaddrinfo("example.com", 25)


# --- the world the requests run in ------------------------------------------------------------


@pytest.fixture
def world(settings, smtp_env, tmp_path):
    """An active pool on a closed loopback port and one object of every kind at pk=900001."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MAILOPS = {
        **settings.MAILOPS,
        "DNSBL_ZONES": ["zen.example.test"],
        "DNS_RESOLVER": "127.0.0.1",
        "DNS_RESOLVER_PORT": 9,
        "DNS_TIMEOUT_SECONDS": 0.2,
        "SMTP_CONNECT_TIMEOUT": 0.5,
        "SENDGRID_API_HOST": "http://127.0.0.1:9",
    }
    smtp_env([9])
    configuration.load_preset("starter")
    server = Server.objects.create(
        pk=PK, kind=ServerKind.SMTP, slot=PK, name="Fuzz", host="127.0.0.1", port=9, security="none",
        state=ServerState.ACTIVE, in_pool=False, warmup_enabled=False, ip_address="127.0.0.2", password="fuzz-secret",
    )
    Alert.objects.create(pk=PK, level="warning", kind="test", server=server, message="fuzz")
    prospect_list = ProspectList.objects.create(pk=PK, name="Fuzz list", prospect_count=2)
    Prospect.objects.bulk_create(Prospect(prospect_list=prospect_list, email=f"p{n}@example.com", name=f"P{n}") for n in range(2))
    job = ImportJob.objects.create(pk=PK, prospect_list=prospect_list, filename="fuzz.csv", status=ImportJob.Status.DONE)
    ImportRowError.objects.create(job=job, line=3, reason="not an address", raw="nope,,")
    Campaign.objects.create(pk=PK, name="Fuzz", prospect_list=prospect_list, from_email="news@example.com", subject="Hi {{ name }}", text_body="Hi")
    Suppression.objects.create(pk=PK, email="fuzz@example.com", reason="manual")


@pytest.fixture
def token(django_user_model) -> str:
    user = django_user_model.objects.create(username="fuzzer")  # no password: no hashing cost per test
    user.groups.add(Group.objects.get_or_create(name="operators")[0])
    return Token.objects.create(user=user).key


@pytest.fixture
def app():
    """Django's WSGI application, kept inside the test's transaction as Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def load_schema(app, token: str):
    """The schema as /api/schema/ serves it to a signed-in program (fetched once per run)."""
    headers = {"Authorization": f"Token {token}"}
    if "text" not in _schema_text:
        loaded = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app, headers=headers)
        _schema_text["text"] = json.dumps(loaded.raw_schema)
        return loaded
    schema = schemathesis.openapi.from_dict(json.loads(_schema_text["text"]))
    schema.app = app
    return schema


# --- the fuzzing ------------------------------------------------------------------------------


@pytest.mark.parametrize("label", OPERATIONS)
def test_no_input_makes_the_api_answer_5xx(label, world, token, app):
    schema = load_schema(app, token)
    operation = schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in /api/schema/"
    headers = {"Authorization": f"Token {token}"}
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    try:
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    except Exception:  # noqa: BLE001 — some operations have nothing to negate
        pass

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not os.environ.get("SCHEMATHESIS_RANDOM"),
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=st.one_of(strategies), real_ids=st.booleans())
    def run(case, real_ids: bool) -> None:
        # A multipart body that is not an object cannot even be encoded by the test client.
        if case.media_type and "form" in case.media_type and not isinstance(case.body, dict):
            hypothesis.reject()
        if real_ids and case.path_parameters:
            case.path_parameters = {name: PK for name in case.path_parameters if name != "email"} | (
                {"email": "fuzz@example.com"} if "email" in case.path_parameters else {}
            )
        response = case.call(app=app, headers=headers)
        assert response.status_code < 500, (
            f"{label} answered {response.status_code}\n{case.as_curl_command(headers=headers)}\n{response.text[:2000]}"
        )

    run()

"""Every URL pattern, as an anonymous visitor, a viewer and an operator.

The table below holds one decision per URL name (admin URLs share one). A URL added
without a decision fails `test_every_url_has_a_decision`; a decision for a URL that is
gone fails it too, so the table always describes the site as it is.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from campaigns.models import Campaign, ImportJob, ProspectList, Suppression
from servers import configuration
from servers.models import Alert, Server, ServerKind, ServerState

pytestmark = pytest.mark.django_db

PK = 900001
SAMPLES = {
    "pk": str(PK),
    "object_id": str(PK),
    "list_id": str(PK),
    "import_id": str(PK),
    "app_label": "servers",
    "content_type_id": "1",
    "id": str(PK),
    "token": "not-a-real-token",
    "email": "someone@example.com",
    "action": "pause",
    "url": "no-such-admin-page/",
}

# What a role must get. Ints are exact statuses; the two markers are:
LOGIN = "redirected to sign in"  # 302 to /login/ (or the admin's sign-in, which forwards there)
ALLOWED = "allowed"  # none of 401/403/405, no sign-in redirect, no 5xx: the outcome depends on the (empty) body
SKIP = "not exercised"  # an operator's DELETE would remove the fixtures the other checks need
ROLES = ("anonymous", "viewer", "operator")


@dataclass(frozen=True)
class Rule:
    why: str
    expect: dict[str, tuple[object, object, object]] = field(default_factory=dict)


def api_read(why: str) -> Rule:
    return Rule(why, {"GET": (401, 200, 200)})


def api_collection(why: str) -> Rule:
    return Rule(why, {"GET": (401, 200, 200), "POST": (401, 403, ALLOWED)})


def api_object(why: str, *writes: str) -> Rule:
    expect: dict[str, tuple[object, object, object]] = {"GET": (401, 200, 200)}
    for method in writes:
        expect[method] = (401, 403, SKIP if method == "DELETE" else ALLOWED)
    return Rule(why, expect)


def api_action(why: str, method: str = "POST") -> Rule:
    # DRF authenticates and checks permissions before the method: a viewer's GET is a 405.
    return Rule(why, {"GET": (401, 405, 405), method: (401, 403, SKIP if method == "DELETE" else ALLOWED)})


def page(why: str) -> Rule:
    return Rule(why, {"GET": (LOGIN, 200, 200)})


def operator_page(why: str) -> Rule:
    return Rule(why, {"GET": (LOGIN, 403, 200)})


def operator_post(why: str) -> Rule:
    return Rule(why, {"GET": (LOGIN, 405, 405), "POST": (LOGIN, 403, ALLOWED)})


def reader_post(why: str) -> Rule:
    return Rule(why, {"GET": (LOGIN, 405, 405), "POST": (LOGIN, ALLOWED, ALLOWED)})


# Query strings some URLs need to answer 200 rather than a 400/404 about the missing parameter.
QUERIES = {"api-preset-recommend": "?emailsPerDay=2000", "dashboard:campaign-preview-frame": f"?campaign={PK}"}

ADMIN = Rule("the Django admin: staff only; operators and viewers are not staff", {"GET": (LOGIN, LOGIN, LOGIN)})

DECISIONS: dict[str, Rule] = {
    # public by design
    "login": Rule("the sign-in page; a signed-in user is sent on to the dashboard", {"GET": (200, 302, 302)}),
    "admin-login": Rule("the admin's sign-in goes to our throttled one", {"GET": (302, 302, 302)}),
    "logout": Rule("sign-out is a POST, and only for the signed in", {"GET": (LOGIN, 405, 405), "POST": (LOGIN, LOGIN, LOGIN)}),
    "unsubscribe": Rule("one-click unsubscribe: the signed token is the credential", {"GET": (400, 400, 400), "POST": (400, 400, 400)}),
    "sendgrid-webhook": Rule("SendGrid's signed events: the signature is the credential", {"GET": (405, 405, 405), "POST": (403, 403, 403)}),
    "metrics": Rule("Prometheus: a bearer token or a signed-in session", {"GET": (401, 200, 200)}),
    "dashboard:set_language": Rule("the language switch on the sign-in page", {"POST": (302, 302, 302)}),
    # API: viewers read, operators change
    "schema": api_read("the OpenAPI schema"),
    "api-docs": api_read("Swagger UI"),
    "api-multi-server": Rule("the seed's configuration endpoint", {"GET": (401, 405, 405), "POST": (401, 403, ALLOWED)}),
    "api-presets": api_read("presets"),
    "api-preset-recommend": api_read("the volume → preset recommendation (?emailsPerDay=)"),
    "api-configuration": Rule("the active configuration", {"GET": (401, 200, 200), "PUT": (401, 403, ALLOWED)}),
    "api-configuration-save-as-preset": Rule("save the configuration as a preset", {"GET": (401, 405, 405), "POST": (401, 403, ALLOWED)}),
    "api-statistics": api_read("statistics"),
    "api-recommendations": api_read("recommendations"),
    "api-server-list": api_collection("servers"),
    "api-server-detail": api_object("a server", "PUT", "PATCH", "DELETE"),
    "api-server-pause": api_action("pause a server"),
    "api-server-resume": api_action("resume a server"),
    "api-server-advance-warmup": api_action("skip a warm-up day"),
    "api-server-health-check": api_action("probe a server now"),
    "api-server-blocklist-check": api_action("check a server's IP now"),
    "api-alert-list": api_read("the alert feed"),
    "api-alert-detail": api_read("an alert"),
    "api-alert-acknowledge": api_action("acknowledge an alert"),
    "api-list-list": api_collection("prospect lists"),
    "api-list-detail": api_object("a prospect list", "PUT", "PATCH", "DELETE"),
    "api-list-upload": api_action("upload a CSV"),
    "api-list-export": api_read("download a list"),
    "api-list-prospects": api_read("a list's prospects"),
    "api-import-list": api_read("import jobs"),
    "api-import-detail": api_read("an import's progress"),
    "api-import-errors": api_read("an import's row errors"),
    "api-import-errors-csv": api_read("an import's row errors as CSV"),
    "api-campaign-list": api_collection("campaigns"),
    "api-campaign-detail": api_object("a campaign", "PUT", "PATCH", "DELETE"),
    "api-campaign-start": api_action("start a campaign"),
    "api-campaign-pause": api_action("pause a campaign"),
    "api-campaign-resume": api_action("resume a campaign"),
    "api-campaign-cancel": api_action("cancel a campaign"),
    "api-campaign-test-send": api_action("send a test"),
    "api-campaign-stats": api_read("a campaign's statistics"),
    "api-suppression-list": api_collection("the suppression list"),
    "api-suppression-detail": api_object("a suppression", "DELETE"),
    "api-suppression-remove-by-email": api_action("remove a suppression by address", "DELETE"),
    "api-suppression-import-csv": api_action("import suppressions"),
    "api-suppression-export": api_read("download the suppression list"),
    "api-send": Rule("send one email", {"GET": (401, 405, 405), "POST": (401, 403, ALLOWED)}),
    # the dashboard: pages for everyone signed in, buttons for operators
    "dashboard:overview": page("overview"),
    "dashboard:stats-partial": page("overview partial"),
    "dashboard:recommendations-partial": page("overview partial"),
    "dashboard:alerts-partial": page("overview partial"),
    "dashboard:daily-chart-partial": page("overview chart data"),
    "dashboard:alerts": page("alerts"),
    "dashboard:alert-acknowledge": operator_post("acknowledge an alert"),
    "dashboard:presets": page("presets and costs"),
    "dashboard:preset-recommend": page("volume recommendation"),
    "dashboard:preset-plan": operator_post("preview a configuration change"),
    "dashboard:preset-apply": operator_post("apply a configuration"),
    "dashboard:rotation": operator_post("change the rotation strategy"),
    "dashboard:servers": page("servers"),
    "dashboard:server-rows": page("servers partial"),
    "dashboard:server-detail": page("a server"),
    "dashboard:server-form": operator_page("the server edit form (it shows which secrets are set, never their values)"),
    "dashboard:server-edit": operator_post("edit a server"),
    "dashboard:server-pause": operator_post("pause a server"),
    "dashboard:server-resume": operator_post("resume a server"),
    "dashboard:server-advance": operator_post("skip a warm-up day"),
    "dashboard:server-check": operator_post("check a server now"),
    "dashboard:prospects": page("prospects"),
    "dashboard:prospect-upload": operator_post("upload a CSV"),
    "dashboard:list-detail": page("a list"),
    "dashboard:import-detail": page("an import"),
    "dashboard:import-progress": page("import progress partial"),
    "dashboard:import-errors": page("import errors CSV"),
    "dashboard:campaigns": page("campaigns"),
    "dashboard:campaign-new": page("the campaign form"),
    "dashboard:campaign-create": operator_post("create a campaign"),
    "dashboard:campaign-preview": reader_post("render a preview (reads only)"),
    "dashboard:campaign-preview-frame": page("the preview frame (?campaign=)"),
    "dashboard:campaign-detail": page("a campaign"),
    "dashboard:campaign-edit": page("the edit form"),
    "dashboard:campaign-update": operator_post("save a campaign"),
    "dashboard:campaign-progress": page("campaign progress partial"),
    "dashboard:campaign-test": operator_post("send a test"),
    "dashboard:campaign-action": operator_post("start/pause/resume/cancel"),
    "dashboard:suppressions": page("suppressions"),
    "dashboard:suppression-add": operator_post("suppress an address"),
    "dashboard:suppression-remove": operator_post("remove a suppression"),
}


@dataclass(frozen=True)
class Route:
    key: str
    pattern: str
    url: str
    query: str = ""


_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def _concrete(pattern: str) -> str:
    url = _GROUP.sub(lambda m: SAMPLES[m.group(1)], pattern)
    url = _CONVERTER.sub(lambda m: SAMPLES[m.group(1)], url)
    return "/" + url.replace("^", "").replace("$", "").replace("\\", "")


def all_routes() -> list[Route]:
    routes: dict[str, Route] = {}

    def walk(resolver: URLResolver, prefix: str, namespace: str | None) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                inner = namespace
                if entry.namespace:
                    inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
                walk(entry, prefix + str(entry.pattern), inner)
                continue
            assert isinstance(entry, URLPattern)
            pattern = prefix + str(entry.pattern)
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            key = "admin" if pattern.startswith("admin/") and name != "admin-login" else (name or pattern)
            routes.setdefault(f"{key} {pattern}", Route(key, pattern, _concrete(pattern), QUERIES.get(key, "")))

    walk(get_resolver(), "", None)
    return list(routes.values())


def test_every_url_has_a_decision():
    keys = {route.key for route in all_routes()}
    missing = sorted(keys - DECISIONS.keys() - {"admin"})
    assert not missing, f"URLs without an access decision (add them to DECISIONS): {missing}"
    stale = sorted(DECISIONS.keys() - keys)
    assert not stale, f"decisions for URLs that no longer exist: {stale}"


def test_sample_urls_resolve_to_their_own_pattern():
    for route in all_routes():
        match = resolve(route.url)
        if route.key != "admin":
            assert (match.namespace + ":" + match.url_name if match.namespace else match.url_name) == route.key, route


@pytest.fixture
def objects(operator, smtp_env):
    smtp_env([9])
    configuration.load_preset("starter")
    server = Server.objects.create(
        pk=PK, kind=ServerKind.SMTP, slot=PK, name="Walker", host="127.0.0.1", port=9, security="none",
        state=ServerState.ACTIVE, in_pool=False, warmup_enabled=False,
    )
    Alert.objects.create(pk=PK, level="info", kind="test", server=server, message="walked")
    prospect_list = ProspectList.objects.create(pk=PK, name="Walker list")
    ImportJob.objects.create(pk=PK, prospect_list=prospect_list, filename="walk.csv", status=ImportJob.Status.DONE)
    Campaign.objects.create(pk=PK, name="Walker", prospect_list=prospect_list, from_email="news@example.com", subject="Hi", text_body="Hi")
    Suppression.objects.create(pk=PK, email="walker@example.com", reason="manual")


def webhook_public_key() -> str:
    """A key for the SendGrid webhook, so an unsigned POST meets the signature check, not the "unconfigured" 503."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return base64.b64encode(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def _check(client: Client, role: str, route: Route, method: str, expected: object) -> str | None:
    if expected == SKIP:
        return None
    response = getattr(client, method.lower())(route.url + route.query)
    code = response.status_code
    location = response.get("Location", "")
    to_login = code == 302 and location.startswith(("/login/", "/admin/login/"))
    if route.key == "admin" and route.url == "/admin/logout/":
        # The admin answers a non-staff user's sign-out with its index, which then asks for sign-in.
        to_login = to_login or (code == 302 and location == "/admin/")
    if expected == LOGIN:
        ok = to_login
    elif expected == ALLOWED:
        ok = code < 500 and code not in (401, 403, 405) and not to_login
    else:
        ok = code == expected and (expected != 302 or not to_login or route.key == "admin-login")
    if ok:
        return None
    return f"{role} {method} {route.url} ({route.key}): expected {expected}, got {code} {location}".strip()


def _clients(viewer, operator) -> dict[str, Client]:
    clients = {role: Client() for role in ROLES}
    clients["viewer"].force_login(viewer)
    clients["operator"].force_login(operator)
    return clients


def test_every_url_answers_each_role_as_decided(objects, viewer, operator, settings):
    settings.MAILOPS = {
        **settings.MAILOPS,
        "DNSBL_ZONES": [],
        "DNS_RESOLVER": "127.0.0.1",
        "DNS_RESOLVER_PORT": 9,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": webhook_public_key(),
    }
    clients = _clients(viewer, operator)
    failures = []
    routes = all_routes()
    # Reads first, then writes (deletes never by operators), sign-out last: every check sees
    # the fixtures and a signed-in client.
    last = [r for r in routes if r.key == "logout"]
    routes = [r for r in routes if r.key != "logout"]
    for phase, batch in ((("GET",), routes), (("POST", "PUT", "PATCH", "DELETE"), routes), (("GET", "POST"), last)):
        for route in batch:
            rule = ADMIN if route.key == "admin" else DECISIONS[route.key]
            if route.key == "admin" and phase != ("GET",):
                continue
            for method, expected in rule.expect.items():
                if method not in phase:
                    continue
                for role, want in zip(ROLES, expected):
                    failure = _check(clients[role], role, route, method, want)
                    if failure:
                        failures.append(failure)
    assert not failures, "\n".join(failures)


def test_the_admin_itself_opens_for_staff(admin_client):
    assert admin_client.get("/admin/").status_code == 200

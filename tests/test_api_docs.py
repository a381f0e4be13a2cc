"""The API docs work under the site's CSP, which allows only our own static files."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

CHROMIUM = "/usr/bin/chromium"


class Inline(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block, and every script source."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []
        self.sources: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "style" in attrs or any(name.startswith("on") for name in attrs):
            self.blocked.append(f"<{tag}> inline attribute")
        if tag == "style":
            self.blocked.append("<style> element")
        if tag == "script":
            if attrs.get("src"):
                self.sources.append(attrs["src"])
            else:
                self._in_script = True

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.blocked.append("inline <script>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False


def csp(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split(" ", 1)[1] for part in header.split("; ")}


@pytest.mark.parametrize("url", ["/login/", "/api/docs/", "/api/schema/", "/api/servers/", "/", "/metrics"])
def test_every_kind_of_response_carries_the_strict_csp(operator, url):
    client = Client()
    if url != "/login/":
        client.force_login(operator)
    response = client.get(url)
    assert response.status_code == 200
    policy = csp(response)
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["default-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]


def test_the_docs_page_has_nothing_inline_and_loads_only_our_own_files(operator_client):
    html = operator_client.get("/api/docs/").content.decode()
    page = Inline()
    page.feed(html)
    assert page.blocked == []
    assert page.sources and all(src.startswith("/") and not src.startswith("//") for src in page.sources)
    init = next(src for src in page.sources if src.startswith("/api/docs/"))
    script = operator_client.get(init)
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_renders_every_operation_in_chromium_without_csp_violations(live_server, operator, monkeypatch):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    session = SessionStore()
    session[SESSION_KEY] = str(operator.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = operator.get_session_auth_hash()
    session.save()
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        context = browser.new_context()
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session.session_key, "url": live_server.url}])
        tab = context.new_page()
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(str(e)))
        tab.goto(f"{live_server.url}/api/docs/")
        tab.wait_for_selector(".opblock", timeout=30_000)
        operations = tab.locator(".opblock").count()
        title = tab.locator(".info .title").inner_text()
        browser.close()
    assert "mailops API" in title
    assert operations >= 50
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems

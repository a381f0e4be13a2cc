"""End to end in headless Chromium: an operator runs a campaign from the browser.

Real pieces only: the app on pytest-django's live server, five demo SMTP relays on loopback,
a real Celery worker (imports and batches), and a dispatcher thread standing in for beat.
Screenshots (desktop and phone width) are saved under test-artifacts/e2e/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import expect

from campaigns import dispatch
from servers.models import Configuration, Server
from tests.support.celery_worker import celery_worker, worker_overrides  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
PROSPECTS = 40
TIMEOUT_MS = 60_000


@pytest.fixture
def browser(monkeypatch) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # still plain synchronous code, which Django would otherwise refuse here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def beat() -> Iterator[None]:
    """Run the dispatcher every half second, as beat does in production."""
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.wait(0.5):
                dispatch.run_once()
        finally:
            connection.close()

    thread = threading.Thread(target=loop, name="test-beat", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=10)


def benign(console_error: str) -> bool:
    """htmx reports a request it aborted on purpose (a poll cut short by navigation, a preview
    replaced by a newer keystroke) as an error; failed responses are caught separately."""
    return console_error.startswith(("htmx:sendAbort", "htmx:afterRequest"))


def assert_polling_pauses_while_hidden(page) -> None:
    """The overview's cards poll every 5 s while visible, not at all while hidden, and catch up on return."""
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/partials/stats/" in r.url else None)
    page.wait_for_timeout(6_000)
    assert len(polls) >= 1

    def set_visibility(state: str) -> None:
        page.evaluate(
            """state => {
                Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
                document.dispatchEvent(new Event("visibilitychange"));
            }""",
            state,
        )

    set_visibility("hidden")
    page.wait_for_timeout(500)
    polls.clear()
    page.wait_for_timeout(6_000)
    assert polls == []
    with page.expect_request(lambda r: "/partials/stats/" in r.url, timeout=2_000):
        set_visibility("visible")


def write_csv(path: Path) -> Path:
    rows = ["email,name,company,country"]
    rows += [f"lead{i}@agency{i % 4}.es,Lead {i},Agency {i % 4},ES" for i in range(PROSPECTS)]
    rows += ["not-an-address,Broken Row,Nowhere,ES"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_an_operator_runs_a_campaign_from_the_browser(
    browser,
    live_server,
    operator,
    relay_factory,
    smtp_env,
    celery_worker,  # noqa: F811 (the fixture, requested by name)
    beat,
    tmp_path,
):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    relays = [relay_factory(name=f"relay-{n}", seed=n) for n in range(1, 6)]
    smtp_env([relay.port for relay in relays])

    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and not benign(m.text) else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "response", lambda r: problems.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None
    )

    def shot(name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    # 1. Sign in.
    page.goto(live_server.url + "/login/")
    shot("01-login")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", "operator-pass-123")
    page.click("button[type=submit]")
    page.wait_for_selector("#stat-cards")
    assert_polling_pauses_while_hidden(page)

    # 2. Apply the professional preset, through its confirmation step.
    page.click("nav >> text=Presets & costs")
    page.click("article[aria-labelledby=preset-professional] button[type=submit]")
    page.wait_for_selector("#confirm-apply")
    assert "5 servers added" in page.inner_text("#plan-panel")
    shot("02-preset-confirm")
    page.click("#confirm-apply")
    page.wait_for_selector(".flash--success")
    assert Configuration.objects.get(is_active=True).preset.key == "professional"
    assert Server.objects.filter(in_pool=True, state="active", kind="smtp").count() == 5
    shot("03-presets")

    # 3. Upload a CSV and watch the import finish.
    page.click("nav >> text=Prospects")
    page.fill("#id_new_list_name", "E2E leads")
    page.set_input_files("#id_file", str(write_csv(tmp_path / "leads.csv")))
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#import-status")).to_have_text("Done")
    errors = page.locator("#import-progress tbody tr")
    expect(errors).to_have_count(1)
    assert "not-an-address" in errors.inner_text()
    assert page.get_attribute("#import-bar", "value") == "100"
    shot("04-import-done")

    # 4. Create the campaign (the live preview renders it) and start it.
    page.click("text=Create a campaign for this list")
    page.fill("#id_name", "E2E launch")
    page.fill("#id_from_name", "Sales")
    page.fill("#id_from_email", "sales@example.com")
    page.fill("#id_subject", "Hello {{ name }}")
    page.fill("#id_html_body", "<p>Hi {{ name }} of {{ company }}, our spring rates are in.</p>")
    page.wait_for_selector("#preview .mail-head__subject")
    assert page.inner_text("#preview .mail-head__subject") == "Hello Lead 0"
    frame = page.frame_locator("#preview iframe")
    # The body field still has the focus: the preview follows typing, not only leaving a field.
    expect(frame.locator("body")).to_contain_text("Hi Lead 0 of Agency 0, our spring rates are in.")
    assert "Unsubscribe" in frame.locator("body").inner_text()
    shot("05-campaign-preview")
    page.click("#campaign-form button[type=submit]")
    page.wait_for_selector("button[data-action=start]")
    page.click("button[data-action=start]")

    # 5. Watch the progress bar reach 100%.
    # Locator assertions poll without eval, which the page's CSP (rightly) forbids.
    expect(page.locator("#campaign-bar")).to_have_attribute("value", "100", timeout=90_000)
    expect(page.locator("#count-sent")).to_have_text(str(PROSPECTS))
    shot("06-campaign-done")
    delivered = [rcpt for relay in relays for message in relay.messages for rcpt in message.rcpt_tos]
    assert sorted(delivered) == sorted(f"lead{i}@agency{i % 4}.es" for i in range(PROSPECTS))
    assert sum(1 for relay in relays if relay.messages) >= 2  # the rotation spread the campaign

    # 6. A server's detail page draws both charts with data.
    page.click("nav >> text=Servers")
    shot("07-servers")
    busiest = max(range(5), key=lambda n: len(relays[n].messages))
    page.click(f"text=SMTP Server {busiest + 1}")
    page.wait_for_selector("#volume-chart")
    charts = page.evaluate(
        """() => ['volume-chart', 'reputation-chart'].map(id => {
            const chart = Chart.getChart(document.getElementById(id));
            const total = d => d.data.reduce((a, b) => a + (b || 0), 0);
            return chart ? chart.data.datasets.map(d => ({label: d.label, total: total(d)})) : null;
        })"""
    )
    volume, reputation = charts
    assert volume is not None and reputation is not None
    sent = next(d for d in volume if d["label"] == "Sent")
    assert sent["total"] == len(relays[busiest].messages)
    assert reputation[0]["total"] > 0
    page.click("#edit-server summary")  # the edit form loads when opened
    expect(page.locator("#server-form input[name=password]")).to_have_value("")
    shot("08-server-detail")

    # The overview and the campaign at phone width.
    phone = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="es-ES", storage_state=context.storage_state()
    )
    mobile = phone.new_page()
    mobile.on("console", lambda m: problems.append(m.text) if m.type == "error" and not benign(m.text) else None)
    mobile.goto(live_server.url + "/")
    mobile.wait_for_selector("#daily-chart")
    assert "Resumen" in mobile.inner_text("h1")
    assert mobile.evaluate("document.documentElement.scrollWidth") <= 390  # nothing overflows the screen
    mobile.screenshot(path=str(ARTIFACTS / "09-overview-phone-es.png"), full_page=True)
    mobile.click("[data-nav-toggle]")
    mobile.click("#site-nav >> text=Campañas")
    mobile.click("text=E2E launch")
    mobile.wait_for_selector("#campaign-bar")
    mobile.screenshot(path=str(ARTIFACTS / "10-campaign-phone-es.png"), full_page=True)
    phone.close()
    context.close()

    # No CSP violation, no script error, no failed request on any page.
    assert problems == []

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.utils import timezone, translation

from servers.models import BlocklistCheck, DomainAuthCheck, Preset, Quota, ServerKind, ServerState
from servers.recommendations import get_recommendations, next_preset
from tests.support.monitoring import default_schedule, make_configuration, make_server, stat

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 3, 10)


@pytest.fixture(autouse=True)
def sender_domain(settings):
    settings.MAILOPS = {**django_settings.MAILOPS, "SENDER_DOMAIN": "mailops.test", "DKIM_SELECTOR": "mo1"}
    DomainAuthCheck.objects.create(
        domain="mailops.test", dkim_selector="mo1", spf="v=spf1 -all", dkim="v=DKIM1; p=abc", dmarc="v=DMARC1; p=reject"
    )


def recommend(language: str = "en") -> list[dict[str, str]]:
    with translation.override(language):
        return get_recommendations(day=TODAY)


def messages(language: str = "en") -> list[str]:
    return [r["message"] for r in recommend(language)]


def test_a_healthy_pool_gets_no_recommendation():
    make_configuration()
    server = make_server(1, reputation=97.0)
    stat(server, 0, today=TODAY, sent=400)

    assert recommend() == []


# -- reputation ---------------------------------------------------------------------------


def test_an_average_reputation_below_80_says_slow_down_in_the_seeds_words():
    make_configuration()
    make_server(1, reputation=70.0)
    make_server(2, reputation=85.0)

    assert recommend("es") == [
        {"level": "warning", "message": "La reputación promedio está por debajo del 80%. Reduce la velocidad."}
    ]
    assert messages("en") == ["Average reputation is below 80%. Slow down."]


def test_an_average_reputation_of_exactly_80_is_quiet():
    make_configuration()
    make_server(1, reputation=70.0)
    make_server(2, reputation=90.0)

    assert recommend() == []


def test_unconfigured_slots_do_not_drag_the_average_down():
    make_configuration()
    make_server(1, reputation=95.0)
    make_server(2, reputation=0.0, host="", state=ServerState.UNCONFIGURED)

    assert recommend() == []


# -- warm-up --------------------------------------------------------------------------------


def warming_server(slot: int, started_days_ago: int):
    return make_server(slot, warmup_enabled=True, warmup_schedule=default_schedule(),
                       warmup_started_on=TODAY - dt.timedelta(days=started_days_ago))


def test_servers_in_warmup_get_the_seeds_note_and_the_date_of_full_capacity():
    make_configuration()
    warming_server(1, 0)
    warming_server(2, 2)
    warming_server(3, 4)

    [spanish] = recommend("es")
    [english] = recommend("en")

    # Day 1 today: day 6 (full capacity) comes on 15 March.
    assert spanish == {
        "level": "info",
        "message": "3 servidores están en warmup. Capacidad completa pronto. "
                   "Todos llegan a capacidad completa el 15 de marzo de 2026.",
    }
    assert english["message"] == "3 servers are warming up. Full capacity soon. All reach full capacity on March 15, 2026."


def test_one_server_in_warmup_is_singular():
    make_configuration()
    warming_server(1, 3)

    assert messages("es") == ["1 servidor está en warmup. Capacidad completa pronto. "
                              "Llega a capacidad completa el 12 de marzo de 2026."]


def test_servers_past_warmup_or_without_it_are_quiet():
    make_configuration()
    warming_server(1, 5)  # day 6: full capacity
    make_server(2, warmup_enabled=False)

    assert recommend() == []


# -- utilisation ------------------------------------------------------------------------------


def starter_pool(used: int):
    make_configuration(preset=Preset.objects.get(key="starter"), server_count=1, daily_limit_per_server=500)
    server = make_server(1)
    Quota.objects.create(server=server, day=TODAY - dt.timedelta(days=2), cap=500, used=used)
    return server


def test_utilisation_at_80_percent_names_the_next_preset():
    starter_pool(400)

    assert recommend() == [{
        "level": "warning",
        "message": "Utilisation reached 80% of capacity (400 of 500 emails a day). "
                   "Upgrade to Basic Dual - Two Servers (basic-dual): 1,000 emails a day.",
    }]
    assert messages("es") == [
        "El uso llegó al 80% de la capacidad (400 de 500 emails/día). "
        # Django's Spanish format groups thousands with a no-break space.
        "Pasa a Basic Dual - Two Servers (basic-dual): 1\xa0000 emails/día."
    ]


def test_utilisation_below_80_percent_is_quiet():
    starter_pool(399)

    assert recommend() == []


def test_utilisation_older_than_the_window_is_quiet():
    make_configuration(preset=Preset.objects.get(key="starter"), server_count=1, daily_limit_per_server=500)
    server = make_server(1)
    Quota.objects.create(server=server, day=TODAY - dt.timedelta(days=7), cap=500, used=500)

    assert recommend() == []


def test_the_next_preset_follows_the_preset_order_and_needs_more_capacity():
    def after(key: str) -> str | None:
        preset = Preset.objects.get(key=key)
        config = make_configuration(preset=preset, server_count=preset.smtp_servers,
                                    daily_limit_per_server=preset.daily_limit_per_server,
                                    include_sendgrid=preset.sendgrid_daily_limit > 0,
                                    sendgrid_daily_limit=preset.sendgrid_daily_limit)
        found = next_preset(config)
        return found.key if found else None

    assert after("starter") == "basic-dual"
    assert after("professional-plus") == "business"
    assert after("hybrid-basic") == "hybrid-professional"
    assert after("enterprise-ultimate") == "high-volume-burst"
    assert after("high-volume-burst") is None


def test_a_custom_pool_is_pointed_at_the_first_bigger_preset():
    config = make_configuration(server_count=8, daily_limit_per_server=500)

    assert next_preset(config).key == "business"


def test_at_the_largest_preset_utilisation_suggests_a_custom_configuration():
    preset = Preset.objects.get(key="high-volume-burst")
    make_configuration(preset=preset, server_count=15, daily_limit_per_server=800, include_sendgrid=True,
                       sendgrid_daily_limit=8000)
    server = make_server(1)
    Quota.objects.create(server=server, day=TODAY, cap=20000, used=19000)

    assert messages() == ["Utilisation reached 95% of capacity (19,000 of 20,000 emails a day). "
                          "This is the largest preset: add servers with a custom configuration."]


# -- down and listed -----------------------------------------------------------------------------


def test_a_down_server_is_critical_with_its_reason():
    make_configuration()
    make_server(1)
    make_server(2, state=ServerState.DOWN, state_reason="2 health checks failed in a row; last: connect failed")

    assert recommend() == [{"level": "critical",
                            "message": "SMTP Server 2 is down: 2 health checks failed in a row; last: connect failed"}]
    assert messages("es") == ["Servidor caído: SMTP Server 2. Error: 2 health checks failed in a row; last: connect failed"]


def test_a_listed_server_names_the_zones_of_its_latest_check():
    make_configuration()
    server = make_server(1, state=ServerState.PAUSED_BLOCKLISTED, ip_address="192.0.2.1")
    earlier = timezone.now() - dt.timedelta(hours=1)
    now = timezone.now()
    BlocklistCheck.objects.create(server=server, checked_at=earlier, ip_address="192.0.2.1", zone="old.example",
                                  status="listed")
    for zone, status in (("zen.spamhaus.org", "listed"), ("bl.spamcop.net", "listed"), ("b.barracudacentral.org", "clear")):
        BlocklistCheck.objects.create(server=server, checked_at=now, ip_address="192.0.2.1", zone=zone, status=status)

    assert recommend() == [{
        "level": "critical",
        "message": "SMTP Server 1 (192.0.2.1) is listed on bl.spamcop.net, zen.spamhaus.org and paused. "
                   "Ask the list to delist it; it resumes on its own once clear.",
    }]
    assert messages("es")[0].startswith("SMTP Server 1 (192.0.2.1) está en la lista negra bl.spamcop.net, zen.spamhaus.org")


def test_active_and_manually_paused_servers_raise_no_down_or_listing_note():
    make_configuration()
    make_server(1)
    make_server(2, state=ServerState.PAUSED_MANUAL)

    assert recommend() == []


# -- bounces and complaints ----------------------------------------------------------------------


@pytest.mark.parametrize(("bounced", "fires"), [(30, True), (21, True), (20, False), (0, False)])
def test_a_hard_bounce_rate_above_2_percent_warns(bounced, fires):
    make_configuration()
    server = make_server(1)
    stat(server, 1, today=TODAY, sent=1000 - bounced, bounced=bounced)

    found = recommend()

    if fires:
        assert found == [{"level": "warning", "message": f"The hard-bounce rate is {bounced / 10:.1f}% over the last "
                                                         "7 days, above 2%. Clean your lists before sending more."}]
    else:
        assert found == []


def test_the_bounce_rate_waits_for_enough_mail():
    make_configuration()
    server = make_server(1)
    stat(server, 0, today=TODAY, sent=15, bounced=4)

    assert recommend() == []


@pytest.mark.parametrize(
    ("complained", "level"),
    [(9, None), (10, "warning"), (29, "warning"), (30, "critical"), (100, "critical")],
)
def test_complaints_warn_at_0_1_percent_and_are_critical_at_0_3_percent(complained, level):
    make_configuration()
    server = make_server(1)
    stat(server, 0, today=TODAY, sent=10_000, complained=complained)

    found = recommend()

    if level is None:
        assert found == []
    else:
        [rec] = found
        assert rec["level"] == level
        assert rec["message"].startswith(f"The complaint rate is {complained / 100:.2f}% over the last 7 days")


def test_the_complaint_rate_is_in_spanish_with_a_decimal_comma():
    make_configuration()
    server = make_server(1)
    stat(server, 0, today=TODAY, sent=10_000, complained=15)

    assert messages("es") == ["La tasa de quejas es del 0,15% en los últimos 7 días, igual o superior al 0,1%. "
                              "Envía solo a quien pidió recibir tu correo."]


# -- sender authentication -------------------------------------------------------------------------


def test_each_missing_auth_record_is_named():
    make_configuration()
    make_server(1)
    DomainAuthCheck.objects.create(domain="mailops.test", dkim_selector="mo1", spf=None, dkim="v=DKIM1; p=abc",
                                   dmarc=None)

    assert messages() == [
        "mailops.test has no SPF record. Publish one: receivers junk or refuse unauthenticated bulk mail.",
        "mailops.test has no DMARC record. Publish one: receivers junk or refuse unauthenticated bulk mail.",
    ]
    assert messages("es")[0].startswith("mailops.test no tiene registro SPF.")


def test_a_missing_dkim_record_is_named_when_a_selector_is_configured():
    make_configuration()
    make_server(1)
    DomainAuthCheck.objects.create(domain="mailops.test", dkim_selector="mo1", spf="v=spf1 -all", dkim=None,
                                   dmarc="v=DMARC1; p=reject")

    assert recommend() == [{
        "level": "warning",
        "message": "mailops.test has no DKIM record. Publish one: receivers junk or refuse unauthenticated bulk mail.",
    }]
    assert messages("es") == ["mailops.test no tiene registro DKIM. Publícalo: los receptores mandan a spam o "
                              "rechazan el correo masivo sin autenticar."]


@pytest.fixture
def dns(settings, dns_server):
    """The sender domain's SPF and DMARC published on a loopback DNS server; DKIM up to the test."""
    settings.MAILOPS = {**django_settings.MAILOPS, "DNS_RESOLVER": "127.0.0.1", "DNS_RESOLVER_PORT": dns_server.port,
                        "DNS_TIMEOUT_SECONDS": 0.5}
    dns_server.set("mailops.test", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"])
    dns_server.set("_dmarc.mailops.test", "TXT", ["v=DMARC1; p=reject; rua=mailto:dmarc@mailops.test"])
    return dns_server


def look_up_sender_domain() -> DomainAuthCheck:
    from servers import blocklist

    # Later than the fixture's check, so it is the latest one the rule reads.
    return blocklist.check_domain(force=True, now=timezone.now() + dt.timedelta(minutes=1))


def test_a_dkim_key_missing_from_dns_under_the_configured_selector_raises_the_dkim_warning(dns):
    make_configuration()
    make_server(1)

    check = look_up_sender_domain()

    assert dns.was_asked("mo1._domainkey.mailops.test", "TXT")
    assert (check.dkim_selector, check.dkim) == ("mo1", None)
    assert check.spf and check.dmarc
    assert recommend() == [{
        "level": "warning",
        "message": "mailops.test has no DKIM record. Publish one: receivers junk or refuse unauthenticated bulk mail.",
    }]


def test_a_dkim_key_published_under_the_selector_keeps_the_rule_quiet(dns):
    make_configuration()
    make_server(1)
    dns.set("mo1._domainkey.mailops.test", "TXT", ["v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"])

    check = look_up_sender_domain()

    assert check.dkim == "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
    assert check.problems == []
    assert recommend() == []


def test_a_revoked_dkim_key_raises_the_dkim_warning(dns):
    make_configuration()
    make_server(1)
    dns.set("mo1._domainkey.mailops.test", "TXT", ["v=DKIM1; k=rsa; p="])

    check = look_up_sender_domain()

    assert check.dkim == "v=DKIM1; k=rsa; p="
    assert messages() == [
        "The DKIM key of mailops.test is revoked (empty p=), so every signature fails. Publish the current public key."
    ]
    assert messages("es") == [
        "La clave DKIM de mailops.test está revocada (p= vacío), así que toda firma falla. Publica la clave pública vigente."
    ]


def test_a_failed_lookup_is_not_reported_as_a_missing_record():
    make_configuration()
    make_server(1)
    DomainAuthCheck.objects.create(
        domain="mailops.test", dkim_selector="mo1", spf="v=spf1 -all", dkim=None, dmarc="v=DMARC1; p=reject",
        problems=["Could not look up the DKIM key at mo1._domainkey.mailops.test: no answer."],
    )

    assert recommend() == []


def test_without_a_dkim_selector_it_asks_for_one():
    make_configuration()
    make_server(1)
    DomainAuthCheck.objects.create(domain="mailops.test", dkim_selector="", spf="v=spf1 -all", dkim=None,
                                   dmarc="v=DMARC1; p=reject")

    assert messages() == ["No DKIM selector is configured, so DKIM cannot be checked. Set DKIM_SELECTOR."]


def test_without_a_sender_domain_it_asks_for_one(settings):
    settings.MAILOPS = {**django_settings.MAILOPS, "SENDER_DOMAIN": ""}
    make_configuration()
    make_server(1)

    assert recommend() == [{"level": "info", "message": "No sender domain is configured, so SPF, DKIM and DMARC "
                                                        "cannot be checked. Set MAILOPS_SENDER_DOMAIN."}]


# -- SendGrid overflow ---------------------------------------------------------------------------


@pytest.mark.parametrize(("days_used", "fires"), [(4, True), (7, True), (3, False)])
def test_sendgrid_overflow_on_most_days_suggests_more_own_servers(days_used, fires):
    preset = Preset.objects.get(key="hybrid-basic")
    make_configuration(preset=preset, server_count=3, include_sendgrid=True, sendgrid_daily_limit=1500)
    make_server(1)
    sendgrid = make_server(2, kind=ServerKind.SENDGRID, name="SendGrid", host="", api_key="SG.x", ip_address=None,
                           priority=2)
    for day in range(days_used):
        stat(sendgrid, day, today=TODAY, sent=10)
    stat(sendgrid, 8, today=TODAY, sent=10)  # outside the window

    found = recommend()

    if fires:
        assert found == [{"level": "warning", "message": f"SendGrid overflow was used on {days_used} of the last 7 "
                          "days: your own servers are too few for your volume. Consider Hybrid Professional - Five "
                          "Servers + SendGrid Pro (hybrid-professional)."}]
    else:
        assert found == []


# -- ordering ------------------------------------------------------------------------------------


def test_recommendations_come_most_severe_first():
    make_configuration()
    warming_server(1, 0)
    make_server(2, state=ServerState.DOWN, state_reason="refused", reputation=50.0)

    assert [r["level"] for r in recommend()] == ["critical", "warning", "info"]


# -- translations ---------------------------------------------------------------------------------


def _msgids() -> list[tuple[str, ...]]:
    """Every literal passed to _() or ngettext() in servers/recommendations.py."""
    import ast
    from pathlib import Path

    import servers.recommendations as module

    found = []
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "ngettext"):
            literals = tuple(arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str))
            found.append(literals)
    return found


def test_every_recommendation_string_has_a_spanish_translation():
    from django.utils.translation import gettext, ngettext

    msgids = _msgids()
    assert len(msgids) >= 15
    with translation.override("es"):
        for literals in msgids:
            if len(literals) == 2:
                assert ngettext(literals[0], literals[1], 1) != literals[0], literals
                assert ngettext(literals[0], literals[1], 3) != literals[1], literals
            else:
                assert gettext(literals[0]) != literals[0], literals

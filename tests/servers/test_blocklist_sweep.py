from __future__ import annotations

import datetime as dt
import io

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from servers import alerts, blocklist
from servers.dnsbl import make_resolver
from servers.models import Alert, BlocklistCheck, DomainAuthCheck, ServerDailyStat, ServerState
from tests.support.dnsserver import dns_server  # noqa: F401
from tests.support.monitoring import make_configuration, make_server

pytestmark = pytest.mark.django_db(transaction=True)

ZEN = "zen.spamhaus.test"
BARRACUDA = "b.barracuda.test"
ZONES = [ZEN, BARRACUDA]
IPV6 = "2001:db8::25"
IPV6_REVERSED = "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"


@pytest.fixture
def dns(settings, dns_server):
    settings.MAILOPS = {
        **django_settings.MAILOPS,
        "DNS_RESOLVER": "127.0.0.1",
        "DNS_RESOLVER_PORT": dns_server.port,
        "DNS_TIMEOUT_SECONDS": 0.5,
        "DNSBL_ZONES": ZONES,
        "SENDER_DOMAIN": "mailops.test",
        "DKIM_SELECTOR": "mo1",
    }
    make_configuration(blocklist_interval_seconds=3600)
    return dns_server


def test_a_listed_ip_pauses_its_server_with_the_zone_and_txt_reason(dns):
    server = make_server(1, ip_address="192.0.2.10")
    dns.set(f"10.2.0.192.{ZEN}", "A", ["127.0.0.2"])
    dns.set(f"10.2.0.192.{ZEN}", "TXT", ["https://check.spamhaus.org/listed/?searchterm=192.0.2.10"])

    [result] = blocklist.sweep()

    server.refresh_from_db()
    assert result.action == "paused"
    assert server.state == ServerState.PAUSED_BLOCKLISTED
    assert server.state_reason == (
        "192.0.2.10 listed on zen.spamhaus.test (127.0.0.2): https://check.spamhaus.org/listed/?searchterm=192.0.2.10"
    )
    assert set(BlocklistCheck.objects.values_list("zone", "status")) == {(ZEN, "listed"), (BARRACUDA, "clear")}
    assert ServerDailyStat.objects.get(server=server).listed
    alert = Alert.objects.get(kind=alerts.SERVER_LISTED)
    assert "zen.spamhaus.test" in alert.message


def test_nxdomain_on_every_zone_leaves_the_server_active(dns):
    server = make_server(1, ip_address="192.0.2.10")

    [result] = blocklist.sweep()

    server.refresh_from_db()
    assert server.state == ServerState.ACTIVE
    assert result.action == ""
    assert [r.status for r in result.results] == ["clear", "clear"]
    assert BlocklistCheck.objects.filter(status="clear").count() == 2
    assert not Alert.objects.exists()


@pytest.mark.parametrize("code", ["127.255.255.252", "127.255.255.254", "127.255.255.255"])
def test_a_query_error_code_never_pauses_and_raises_a_configuration_alert(dns, code):
    server = make_server(1, ip_address="192.0.2.10")
    dns.set(f"10.2.0.192.{ZEN}", "A", [code])

    [result] = blocklist.sweep()

    server.refresh_from_db()
    assert server.state == ServerState.ACTIVE
    assert result.action == ""
    assert BlocklistCheck.objects.get(zone=ZEN).status == "error"
    assert not ServerDailyStat.objects.filter(server=server, listed=True).exists()
    alert = Alert.objects.get(kind=alerts.DNSBL_CONFIG)
    assert "not a listing" in alert.message
    assert code in alert.message


def test_the_public_resolver_alert_explains_how_to_fix_it_and_is_raised_once_a_day(dns):
    make_server(1, ip_address="192.0.2.10")
    make_server(2, ip_address="192.0.2.11")
    dns.set(f"10.2.0.192.{ZEN}", "A", ["127.255.255.254"])
    dns.set(f"11.2.0.192.{ZEN}", "A", ["127.255.255.254"])

    blocklist.sweep()
    blocklist.sweep(force=True)

    alert = Alert.objects.get(kind=alerts.DNSBL_CONFIG)
    assert "public or open resolver" in alert.message
    assert "DNS_RESOLVER" in alert.message


def test_a_timeout_is_unknown_and_changes_nothing(dns):
    server = make_server(1, ip_address="192.0.2.10")
    dns.silence(f"10.2.0.192.{ZEN}")

    [result] = blocklist.sweep()

    server.refresh_from_db()
    assert server.state == ServerState.ACTIVE
    assert {r.zone: r.status for r in result.results} == {ZEN: "unknown", BARRACUDA: "clear"}
    assert BlocklistCheck.objects.get(zone=ZEN).status == "unknown"
    assert Alert.objects.get().kind == alerts.DNSBL_UNKNOWN


def test_an_ipv6_address_is_looked_up_by_nibbles_and_paused_when_listed(dns):
    server = make_server(1, ip_address=IPV6)
    dns.set(f"{IPV6_REVERSED}.{BARRACUDA}", "A", ["127.0.0.2"])

    [result] = blocklist.sweep()

    server.refresh_from_db()
    assert result.action == "paused"
    assert server.state == ServerState.PAUSED_BLOCKLISTED
    assert dns.was_asked(f"{IPV6_REVERSED}.{ZEN}", "A")
    assert BlocklistCheck.objects.get(zone=BARRACUDA).ip_address == IPV6


def test_a_delisted_server_resumes_on_its_own_when_every_zone_is_clear(dns):
    server = make_server(1, ip_address="192.0.2.10")
    dns.set(f"10.2.0.192.{ZEN}", "A", ["127.0.0.2"])
    blocklist.sweep()

    dns.remove(f"10.2.0.192.{ZEN}", "A")
    [result] = blocklist.sweep(force=True)

    server.refresh_from_db()
    assert result.action == "resumed"
    assert server.state == ServerState.ACTIVE
    assert list(Alert.objects.order_by("created_at").values_list("kind", flat=True)) == [
        alerts.SERVER_LISTED,
        alerts.SERVER_DELISTED,
    ]


def test_a_paused_server_stays_paused_while_a_zone_gives_no_answer(dns):
    server = make_server(1, ip_address="192.0.2.10")
    dns.set(f"10.2.0.192.{ZEN}", "A", ["127.0.0.2"])
    blocklist.sweep()

    dns.remove(f"10.2.0.192.{ZEN}", "A")
    dns.silence(f"10.2.0.192.{BARRACUDA}")
    blocklist.sweep(force=True)

    server.refresh_from_db()
    assert server.state == ServerState.PAUSED_BLOCKLISTED


def test_a_server_is_checked_again_only_after_the_configured_interval(dns):
    make_server(1, ip_address="192.0.2.10")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert len(blocklist.sweep()) == 1
        clock.shift(dt.timedelta(minutes=59))
        assert blocklist.sweep() == []
        clock.shift(dt.timedelta(minutes=2))
        assert len(blocklist.sweep()) == 1


def test_only_in_pool_configured_servers_with_an_ip_are_checked(dns):
    checked = make_server(1, ip_address="192.0.2.10")
    make_server(2, ip_address="192.0.2.11", in_pool=False)
    make_server(3, ip_address="192.0.2.12", state=ServerState.UNCONFIGURED, host="")
    make_server(4, ip_address=None)

    sweeps = blocklist.sweep()

    assert [s.server for s in sweeps] == [checked]


def test_the_sender_domain_check_is_stored_for_recommendations(dns):
    dns.set("mailops.test", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"])
    dns.set("mo1._domainkey.mailops.test", "TXT", ["v=DKIM1; k=rsa; p=MIIBIjANBgkq"])

    check = blocklist.check_domain()

    assert check == blocklist.latest_domain_auth()
    assert check.spf == "v=spf1 ip4:192.0.2.0/24 -all"
    assert check.dkim == "v=DKIM1; k=rsa; p=MIIBIjANBgkq"
    assert check.dmarc is None
    assert any("no DMARC record" in p for p in check.problems)
    assert "no DMARC record" in Alert.objects.get(kind=alerts.DOMAIN_AUTH).message


def test_the_sender_domain_is_not_looked_up_again_within_the_interval(dns):
    first = blocklist.check_domain()

    again = blocklist.check_domain()

    assert again == first
    assert DomainAuthCheck.objects.count() == 1


def test_the_blocklistcheck_command_prints_every_ip_and_zone(dns):
    make_server(1, ip_address="192.0.2.10")
    dns.set(f"10.2.0.192.{ZEN}", "A", ["127.0.0.2"])
    out = io.StringIO()

    call_command("blocklistcheck", stdout=out)

    text = out.getvalue()
    rows = [line.split("  ") for line in text.splitlines()]
    rows = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    assert ["SMTP Server 1", "192.0.2.10", ZEN, "listed", "127.0.0.2"] in rows
    assert ["SMTP Server 1", "192.0.2.10", BARRACUDA, "clear"] in rows
    assert "SMTP Server 1: paused" in text
    assert "Sender domain mailops.test:" in text
    assert "DMARC  missing" in text


def test_an_explicit_resolver_is_used_instead_of_the_settings(dns_server, settings):
    settings.MAILOPS = {**django_settings.MAILOPS, "DNS_RESOLVER": "127.0.0.1", "DNS_RESOLVER_PORT": 9}
    server = make_server(1, ip_address="192.0.2.10")
    dns_server.set(f"10.2.0.192.{ZEN}", "A", ["127.0.0.3"])
    resolver = make_resolver(nameserver="127.0.0.1", port=dns_server.port, timeout=1.0)

    [result] = blocklist.sweep(resolver=resolver, zones=[ZEN])

    server.refresh_from_db()
    assert result.listed[0].codes == ["127.0.0.3"]
    assert server.state == ServerState.PAUSED_BLOCKLISTED

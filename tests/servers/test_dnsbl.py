from __future__ import annotations

import pytest

from servers.dnsbl import (
    check_ip,
    check_sender_domain,
    make_resolver,
    resolver_from_settings,
    reversed_name,
    zones_from_settings,
)
from tests.support.dnsserver import LoopbackDNSServer, dns_server  # noqa: F401

ZEN = "zen.spamhaus.test"
BARRACUDA = "b.barracuda.test"
SPAMCOP = "bl.spamcop.test"
SLOW = "slow.dnsbl.test"

# 2001:db8::25 reversed nibble by nibble, as RFC 3596 and DNSBLs spell it.
IPV6 = "2001:db8::25"
IPV6_REVERSED = "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"


def resolver_for(server: LoopbackDNSServer, timeout: float = 2.0):
    return make_resolver(nameserver="127.0.0.1", port=server.port, timeout=timeout)


def test_reversed_name_reverses_ipv4_octets():
    assert reversed_name("192.0.2.10", "zen.spamhaus.org") == "10.2.0.192.zen.spamhaus.org"


def test_reversed_name_uses_32_reversed_nibbles_for_ipv6():
    name = reversed_name(IPV6, "zen.spamhaus.org.")

    assert name == f"{IPV6_REVERSED}.zen.spamhaus.org"
    assert len(name.removesuffix(".zen.spamhaus.org").split(".")) == 32


def test_reversed_name_treats_an_ipv4_mapped_address_as_ipv4():
    assert reversed_name("::ffff:192.0.2.10", "bl.spamcop.net") == "10.2.0.192.bl.spamcop.net"


def test_reversed_name_rejects_something_that_is_not_an_ip():
    with pytest.raises(ValueError, match="not an IP address"):
        reversed_name("mail.example.com", "zen.spamhaus.org")


def test_it_reports_a_listing_with_its_txt_reason(dns_server):
    dns_server.set(f"10.2.0.192.{ZEN}", "A", ["127.0.0.2", "127.0.0.4"])
    dns_server.set(f"10.2.0.192.{ZEN}", "TXT", ["https://www.spamhaus.org/query/ip/192.0.2.10"])

    [result] = check_ip("192.0.2.10", [ZEN], resolver=resolver_for(dns_server))

    assert result.status == "listed"
    assert result.listed
    assert result.codes == ["127.0.0.2", "127.0.0.4"]
    assert result.reason == "https://www.spamhaus.org/query/ip/192.0.2.10"
    assert result.error == ""
    assert dns_server.was_asked(f"10.2.0.192.{ZEN}", "A")
    assert dns_server.was_asked(f"10.2.0.192.{ZEN}", "TXT")


def test_a_listing_without_a_txt_record_is_still_a_listing(dns_server):
    dns_server.set(f"10.2.0.192.{BARRACUDA}", "A", ["127.0.0.2"])

    [result] = check_ip("192.0.2.10", [BARRACUDA], resolver=resolver_for(dns_server))

    assert result.status == "listed"
    assert result.reason == ""
    assert dns_server.was_asked(f"10.2.0.192.{BARRACUDA}", "TXT")


def test_several_txt_strings_are_joined_into_one_reason(dns_server):
    dns_server.set(f"10.2.0.192.{ZEN}", "A", ["127.0.0.3"])
    dns_server.set(f"10.2.0.192.{ZEN}", "TXT", [("Listed by CSS, see ", "https://check.spamhaus.org/")])

    [result] = check_ip("192.0.2.10", [ZEN], resolver=resolver_for(dns_server))

    assert result.reason == "Listed by CSS, see https://check.spamhaus.org/"


def test_nxdomain_means_clear(dns_server):
    [result] = check_ip("192.0.2.10", [ZEN], resolver=resolver_for(dns_server))

    assert result.status == "clear"
    assert not result.listed
    assert result.codes == []
    assert dns_server.was_asked(f"10.2.0.192.{ZEN}", "A")
    # No listing, so there is no reason to fetch.
    assert not dns_server.was_asked(f"10.2.0.192.{ZEN}", "TXT")


def test_a_name_without_an_a_record_means_clear(dns_server):
    dns_server.set(f"10.2.0.192.{ZEN}", "TXT", ["stale explanation"])

    [result] = check_ip("192.0.2.10", [ZEN], resolver=resolver_for(dns_server))

    assert result.status == "clear"
    assert dns_server.was_asked(f"10.2.0.192.{ZEN}", "A")


@pytest.mark.parametrize(
    ("code", "must_mention"),
    [
        ("127.255.255.252", ["typing error", "DNSBL_ZONES"]),
        ("127.255.255.254", ["public", "use your own recursive resolver", "8.8.8.8", "DNS_RESOLVER"]),
        ("127.255.255.255", ["excessive", "use your own recursive resolver"]),
        ("127.255.255.253", ["refused", "use your own recursive resolver"]),
    ],
)
def test_a_query_error_code_is_an_error_never_a_listing(dns_server, code, must_mention):
    dns_server.set(f"10.2.0.192.{ZEN}", "A", [code])

    [result] = check_ip("192.0.2.10", [ZEN], resolver=resolver_for(dns_server))

    assert result.status == "error"
    assert not result.listed
    assert result.codes == [code]
    assert code in result.error
    assert "not a listing" in result.error
    for phrase in must_mention:
        assert phrase in result.error
    assert dns_server.was_asked(f"10.2.0.192.{ZEN}", "A")


def test_a_query_error_code_wins_over_a_listing_code_in_the_same_answer(dns_server):
    dns_server.set(f"10.2.0.192.{ZEN}", "A", ["127.0.0.2", "127.255.255.254"])

    [result] = check_ip("192.0.2.10", [ZEN], resolver=resolver_for(dns_server))

    assert result.status == "error"
    assert "127.255.255.254" in result.error


@pytest.mark.parametrize("answer", ["93.184.216.34", "127.0.1.2"])
def test_an_answer_outside_127_0_0_x_is_an_error(dns_server, answer):
    dns_server.set(f"10.2.0.192.{SPAMCOP}", "A", [answer])

    [result] = check_ip("192.0.2.10", [SPAMCOP], resolver=resolver_for(dns_server))

    assert result.status == "error"
    assert not result.listed
    assert answer in result.error
    assert "DNSBL_ZONES" in result.error
    assert dns_server.was_asked(f"10.2.0.192.{SPAMCOP}", "A")


def test_a_zone_that_never_answers_is_unknown(dns_server):
    dns_server.silence(f"10.2.0.192.{SLOW}")

    [result] = check_ip("192.0.2.10", [SLOW], resolver=resolver_for(dns_server, timeout=0.3))

    assert result.status == "unknown"
    assert not result.listed
    assert "no answer" in result.error
    assert "DNS_RESOLVER" in result.error
    assert dns_server.was_asked(f"10.2.0.192.{SLOW}", "A")


def test_no_nameserver_listening_is_unknown():
    # Bind then close a loopback port so nothing listens there.
    server = LoopbackDNSServer().start()
    port = server.port
    server.stop()
    resolver = make_resolver(nameserver="127.0.0.1", port=port, timeout=0.3)

    [result] = check_ip("192.0.2.10", [ZEN], resolver=resolver)

    assert result.status == "unknown"
    assert result.error


def test_an_ipv6_listing_is_found_under_its_nibble_name(dns_server):
    dns_server.set(f"{IPV6_REVERSED}.{ZEN}", "A", ["127.0.0.2"])
    dns_server.set(f"{IPV6_REVERSED}.{ZEN}", "TXT", ["https://www.spamhaus.org/query/ip/2001:db8::25"])

    [result] = check_ip(IPV6, [ZEN], resolver=resolver_for(dns_server))

    assert result.status == "listed"
    assert result.reason == "https://www.spamhaus.org/query/ip/2001:db8::25"
    assert dns_server.was_asked(f"{IPV6_REVERSED}.{ZEN}", "A")


def test_each_zone_gets_its_own_result_in_order(dns_server):
    ip_name = "10.2.0.192"
    dns_server.set(f"{ip_name}.{ZEN}", "A", ["127.255.255.254"])
    dns_server.set(f"{ip_name}.{BARRACUDA}", "A", ["127.0.0.2"])
    dns_server.set(f"{ip_name}.{BARRACUDA}", "TXT", ["Client host blocked using Barracuda Reputation"])
    dns_server.silence(f"{ip_name}.{SLOW}")

    results = check_ip("192.0.2.10", [ZEN, BARRACUDA, SPAMCOP, SLOW], resolver=resolver_for(dns_server, timeout=0.3))

    assert [(r.zone, r.status) for r in results] == [
        (ZEN, "error"),
        (BARRACUDA, "listed"),
        (SPAMCOP, "clear"),
        (SLOW, "unknown"),
    ]
    assert results[1].reason == "Client host blocked using Barracuda Reputation"
    asked = {q.name for q in dns_server.queries if q.rdtype == "A"}
    assert asked == {f"{ip_name}.{zone}" for zone in (ZEN, BARRACUDA, SPAMCOP, SLOW)}


def test_resolver_from_settings_aims_at_the_configured_resolver(dns_server, settings):
    settings.MAILOPS = {
        **settings.MAILOPS,
        "DNS_RESOLVER": "127.0.0.1",
        "DNS_RESOLVER_PORT": dns_server.port,
        "DNS_TIMEOUT_SECONDS": 0.5,
        "DNSBL_ZONES": [ZEN, SPAMCOP],
    }
    dns_server.set(f"10.2.0.192.{SPAMCOP}", "A", ["127.0.0.2"])

    resolver = resolver_from_settings()
    results = check_ip("192.0.2.10", zones_from_settings(), resolver=resolver)

    assert resolver.lifetime == 0.5
    assert [(r.zone, r.status) for r in results] == [(ZEN, "clear"), (SPAMCOP, "listed")]
    assert dns_server.was_asked(f"10.2.0.192.{SPAMCOP}", "A")


def test_without_configured_zones_it_checks_spamhaus_barracuda_and_spamcop(settings):
    settings.MAILOPS = {}

    assert zones_from_settings() == ["zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net"]


DOMAIN = "example.test"
DKIM_KEY = "v=DKIM1; k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" * 8


def publish_good_domain(server: LoopbackDNSServer) -> None:
    server.set(DOMAIN, "TXT", ["google-site-verification=abc", "v=spf1 ip4:192.0.2.0/24 -all"])
    server.set(f"mail._domainkey.{DOMAIN}", "TXT", [DKIM_KEY])
    server.set(f"_dmarc.{DOMAIN}", "TXT", [f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}"])


def test_a_well_configured_domain_has_spf_dkim_and_dmarc_and_no_problems(dns_server):
    publish_good_domain(dns_server)

    auth = check_sender_domain(DOMAIN, dkim_selector="mail", resolver=resolver_for(dns_server))

    assert auth.spf == "v=spf1 ip4:192.0.2.0/24 -all"
    assert auth.dkim == DKIM_KEY
    assert auth.dmarc == f"v=DMARC1; p=reject; rua=mailto:dmarc@{DOMAIN}"
    assert auth.problems == []
    for name in (DOMAIN, f"mail._domainkey.{DOMAIN}", f"_dmarc.{DOMAIN}"):
        assert dns_server.was_asked(name, "TXT")


def test_a_domain_with_nothing_published_gets_a_problem_for_each_mechanism(dns_server):
    auth = check_sender_domain(DOMAIN, dkim_selector="mail", resolver=resolver_for(dns_server))

    assert (auth.spf, auth.dkim, auth.dmarc) == (None, None, None)
    assert len(auth.problems) == 3
    assert "no SPF record" in auth.problems[0]
    assert f"mail._domainkey.{DOMAIN}" in auth.problems[1]
    assert "no DMARC record" in auth.problems[2]
    assert len(dns_server.queries) == 3


def test_multiple_spf_records_are_a_problem(dns_server):
    publish_good_domain(dns_server)
    dns_server.set(DOMAIN, "TXT", ["v=spf1 ip4:192.0.2.0/24 -all", "v=spf1 include:sendgrid.net ~all"])

    auth = check_sender_domain(DOMAIN, dkim_selector="mail", resolver=resolver_for(dns_server))

    # Both are shown, in a stable order, because DNS returns them in no fixed order.
    assert auth.spf == "v=spf1 include:sendgrid.net ~all\nv=spf1 ip4:192.0.2.0/24 -all"
    [problem] = auth.problems
    assert "2 SPF records" in problem
    assert "Merge" in problem


def test_multiple_dmarc_records_are_a_problem(dns_server):
    publish_good_domain(dns_server)
    dns_server.set(f"_dmarc.{DOMAIN}", "TXT", ["v=DMARC1; p=reject", "v=DMARC1; p=none"])

    auth = check_sender_domain(DOMAIN, dkim_selector="mail", resolver=resolver_for(dns_server))

    assert auth.dmarc == "v=DMARC1; p=none\nv=DMARC1; p=reject"
    [problem] = auth.problems
    assert "2 DMARC records" in problem


def test_dmarc_p_none_is_flagged_as_weak(dns_server):
    publish_good_domain(dns_server)
    dns_server.set(f"_dmarc.{DOMAIN}", "TXT", ["v=DMARC1; p=none"])

    auth = check_sender_domain(DOMAIN, dkim_selector="mail", resolver=resolver_for(dns_server))

    assert auth.dmarc == "v=DMARC1; p=none"
    [problem] = auth.problems
    assert "p=none" in problem
    assert "weak" in problem


def test_spf_plus_all_and_a_revoked_dkim_key_are_problems(dns_server):
    publish_good_domain(dns_server)
    dns_server.set(DOMAIN, "TXT", ["v=spf1 +all"])
    dns_server.set(f"mail._domainkey.{DOMAIN}", "TXT", ["v=DKIM1; p="])

    auth = check_sender_domain(DOMAIN, dkim_selector="mail", resolver=resolver_for(dns_server))

    assert auth.spf == "v=spf1 +all"
    assert auth.dkim == "v=DKIM1; p="
    assert len(auth.problems) == 2
    assert "'+all'" in auth.problems[0]
    assert "revoked" in auth.problems[1]


def test_without_a_selector_dkim_is_reported_unchecked_and_not_queried(dns_server):
    publish_good_domain(dns_server)

    auth = check_sender_domain(DOMAIN, dkim_selector="", resolver=resolver_for(dns_server))

    assert auth.dkim is None
    [problem] = auth.problems
    assert "DKIM_SELECTOR" in problem
    assert not any("_domainkey" in q.name for q in dns_server.queries)


def test_a_lookup_timeout_is_reported_as_unknown_not_missing(dns_server):
    publish_good_domain(dns_server)
    dns_server.silence(f"_dmarc.{DOMAIN}")

    auth = check_sender_domain(DOMAIN, dkim_selector="mail", resolver=resolver_for(dns_server, timeout=0.3))

    assert auth.spf is not None
    assert auth.dmarc is None
    [problem] = auth.problems
    assert problem.startswith(f"Could not look up DMARC at _dmarc.{DOMAIN}")
    assert dns_server.was_asked(f"_dmarc.{DOMAIN}", "TXT")


def test_a_txt_answer_too_big_for_udp_arrives_over_tcp(dns_server):
    # A 4096-bit DKIM key plus padding outgrows a UDP reply, as large real keys do.
    big_key = "v=DKIM1; k=rsa; p=" + "A" * 1800
    publish_good_domain(dns_server)
    dns_server.set(f"mail._domainkey.{DOMAIN}", "TXT", [big_key])

    auth = check_sender_domain(DOMAIN, dkim_selector="mail", resolver=resolver_for(dns_server))

    assert auth.dkim == big_key
    transports = {q.transport for q in dns_server.queries if q.name == f"mail._domainkey.{DOMAIN}"}
    assert transports == {"udp", "tcp"}

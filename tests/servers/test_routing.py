"""Geographic routing: recipient TLD → region, regional pools, fallback and strict routing."""

from __future__ import annotations

from collections import Counter

import pytest

from mailops.errors import DomainError
from servers.models import RotationStrategy
from servers.rotation import Pool, Slot
from servers.routing import region_for, validate_rules

GEO = {".com": "US", ".eu": "EU", ".es": "EU", ".mx": "LATAM", ".br": "LATAM", ".ar": "LATAM"}


def slot(id: int, region: str, *, cap: int = 100, priority: int = 1) -> Slot:
    return Slot(id=id, name=f"{region or 'any'}-{id}", kind="smtp", priority=priority, region=region,
                reputation=100.0, cap=cap, used=0)


@pytest.mark.parametrize(
    ("email", "region"),
    [
        ("ana@empresa.es", "EU"),
        ("bob@example.com", "US"),
        ("carla@correo.com.mx", "LATAM"),
        ("dani@loja.com.br", "LATAM"),
        ("eve@agency.eu", "EU"),
        ("fred@example.org", ""),
        ("GINA@EXAMPLE.ES", "EU"),
        ("hal@example.com.", "US"),
    ],
)
def test_the_recipient_tld_picks_the_region(email, region):
    assert region_for(email, GEO) == region


def test_the_longest_matching_rule_wins():
    rules = {".com": "US", ".com.mx": "LATAM", "example.com": "EU"}
    assert region_for("a@shop.com.mx", rules) == "LATAM"
    assert region_for("a@example.com", rules) == "EU"
    assert region_for("a@notexample.com", rules) == "US"


def test_no_rules_means_no_region():
    assert region_for("a@example.es", {}) == ""


def test_rules_are_validated_and_normalised():
    assert validate_rules({"ES": "eu", ".MX": " latam "}) == {".es": "EU", ".mx": "LATAM"}
    with pytest.raises(DomainError):
        validate_rules({".es": ""})
    with pytest.raises(DomainError):
        validate_rules([".es", "EU"])


def test_mail_goes_to_its_own_region_first():
    pool = Pool([slot(1, "US"), slot(2, "EU"), slot(3, "LATAM")], strategy=RotationStrategy.ROUND_ROBIN)
    assert {pool.pick("EU").name for _ in range(10)} == {"EU-2"}
    assert {pool.pick("LATAM").name for _ in range(10)} == {"LATAM-3"}


def test_an_exhausted_region_falls_back_to_the_others():
    pool = Pool([slot(1, "US", cap=50), slot(2, "EU", cap=3), slot(3, "LATAM", cap=50)],
                strategy=RotationStrategy.ROUND_ROBIN)
    picks = [pool.pick("EU").name for _ in range(9)]
    assert picks[:3] == ["EU-2"] * 3
    # Fallback spreads over the other regions rather than piling on one.
    assert Counter(picks[3:]) == {"US-1": 3, "LATAM-3": 3}


def test_strict_routing_holds_mail_when_its_region_is_exhausted():
    pool = Pool([slot(1, "US"), slot(2, "EU", cap=2)], strategy=RotationStrategy.ROUND_ROBIN, strict_routing=True)
    assert [pool.pick("EU").name for _ in range(2)] == ["EU-2", "EU-2"]
    assert pool.pick("EU") is None
    # Other regions are unaffected.
    assert pool.pick("US").name == "US-1"


def test_strict_routing_still_uses_overflow_servers_without_a_region():
    overflow = slot(9, "", priority=2)
    pool = Pool([slot(1, "US"), slot(2, "EU", cap=1), overflow], strategy=RotationStrategy.ROUND_ROBIN,
                strict_routing=True)
    assert pool.pick("EU").name == "EU-2"
    assert pool.pick("EU").name == "any-9"


def test_regionless_servers_serve_every_region_before_fallback():
    pool = Pool([slot(1, "US"), slot(2, "", cap=2)], strategy=RotationStrategy.ROUND_ROBIN)
    assert [pool.pick("EU").name for _ in range(3)] == ["any-2", "any-2", "US-1"]


def test_mail_without_a_region_uses_every_server():
    pool = Pool([slot(1, "US"), slot(2, "EU"), slot(3, "LATAM")], strategy=RotationStrategy.ROUND_ROBIN)
    assert Counter(pool.pick("").name for _ in range(30)) == {"US-1": 10, "EU-2": 10, "LATAM-3": 10}

"""Rotation: the four strategies' distributions, eligibility, priorities and regions."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from servers import quota
from servers.configuration import set_rotation_strategy
from servers.models import RotationStrategy, Server, ServerState
from servers.rotation import Pool, Slot, load_pool
from servers.state import mark_suspect
from tests.support.engine import make_config, make_server

PICKS = 1000


def slots(n: int = 4, *, cap: int = 10_000, used: list[int] | None = None, reputations: list[float] | None = None,
          region: str = "", priority: int = 1, first_id: int = 1) -> list[Slot]:
    return [
        Slot(
            id=first_id + i,
            name=f"S{first_id + i}",
            kind="smtp",
            priority=priority,
            region=region,
            reputation=reputations[i] if reputations else 100.0,
            cap=cap,
            used=used[i] if used else 0,
        )
        for i in range(n)
    ]


def distribution(pool: Pool, picks: int = PICKS, region: str = "") -> Counter[str]:
    counts: Counter[str] = Counter()
    for _ in range(picks):
        slot = pool.pick(region)
        assert slot is not None
        counts[slot.name] += 1
    return counts


def test_round_robin_is_exactly_even_over_1000_picks():
    counts = distribution(Pool(slots(4), strategy=RotationStrategy.ROUND_ROBIN))
    assert counts == {"S1": 250, "S2": 250, "S3": 250, "S4": 250}


def test_round_robin_cycles_in_order_and_skips_exhausted_servers():
    pool = Pool(slots(3, cap=2), strategy=RotationStrategy.ROUND_ROBIN)
    order = [pool.pick().name for _ in range(6)]
    assert order == ["S1", "S2", "S3", "S1", "S2", "S3"]
    assert pool.pick() is None


def test_least_used_balances_the_share_of_each_cap():
    # Servers start the day unevenly used; least-used evens them out.
    pool = Pool(slots(4, cap=1000, used=[0, 100, 200, 300]), strategy=RotationStrategy.LEAST_USED)
    counts = distribution(pool)
    final = {s.name: s.used for s in pool.slots.values()}
    assert max(final.values()) - min(final.values()) <= 1
    assert counts["S1"] > counts["S2"] > counts["S3"] > counts["S4"]


def test_least_used_compares_shares_of_different_caps():
    pool = Pool([*slots(1, cap=1000), *slots(1, cap=250, first_id=2)], strategy=RotationStrategy.LEAST_USED)
    counts = distribution(pool, picks=1000)
    assert counts == {"S1": 800, "S2": 200}


def test_best_performance_favours_reputation_and_round_robins_ties():
    pool = Pool(slots(4, reputations=[95.0, 95.0, 80.0, 60.0]), strategy=RotationStrategy.BEST_PERFORMANCE)
    counts = distribution(pool)
    assert counts == {"S1": 500, "S2": 500}


def test_best_performance_moves_down_a_tier_only_when_the_best_is_exhausted():
    pool = Pool(slots(4, cap=300, reputations=[95.0, 95.0, 80.0, 60.0]), strategy=RotationStrategy.BEST_PERFORMANCE)
    counts = distribution(pool)
    assert counts == {"S1": 300, "S2": 300, "S3": 300, "S4": 100}


def test_random_is_roughly_uniform_with_a_seeded_rng():
    pool = Pool(slots(4), strategy=RotationStrategy.RANDOM, rng=random.Random(42))
    counts = distribution(pool)
    assert sum(counts.values()) == PICKS
    assert all(200 <= n <= 300 for n in counts.values()), counts
    # Chi-square against uniform with 3 degrees of freedom, far below the 0.1% critical value (16.27).
    chi2 = sum((n - PICKS / 4) ** 2 / (PICKS / 4) for n in counts.values())
    assert chi2 < 16.27


def test_a_pick_never_exceeds_the_snapshot_caps():
    pool = Pool(slots(3, cap=5, used=[5, 3, 0]), strategy=RotationStrategy.RANDOM, rng=random.Random(1))
    picked = Counter()
    while (slot := pool.pick()) is not None:
        picked[slot.name] += 1
    assert picked == {"S2": 2, "S3": 5}


def test_priority_two_is_used_only_when_no_priority_one_server_is_left():
    primary = slots(2, cap=3)
    overflow = slots(1, cap=100, priority=2, first_id=10)
    pool = Pool([*primary, *overflow], strategy=RotationStrategy.ROUND_ROBIN)
    order = [pool.pick().name for _ in range(10)]
    assert order[:6] == ["S1", "S2"] * 3
    assert order[6:] == ["S10"] * 4


def test_excluded_servers_are_not_picked_again():
    pool = Pool(slots(3), strategy=RotationStrategy.ROUND_ROBIN)
    pool.exclude(2)
    assert {pool.pick().name for _ in range(30)} == {"S1", "S3"}


@pytest.mark.django_db
def test_only_active_configured_pool_servers_with_quota_are_eligible():
    ok = make_server(name="ok")
    down = make_server(name="down")
    Server.objects.filter(pk=down.pk).update(state=ServerState.DOWN)
    paused = make_server(name="paused")
    Server.objects.filter(pk=paused.pk).update(state=ServerState.PAUSED_BLOCKLISTED)
    outside = make_server(name="outside")
    Server.objects.filter(pk=outside.pk).update(in_pool=False)
    unconfigured = make_server(name="unconfigured")
    Server.objects.filter(pk=unconfigured.pk).update(host="")
    suspect = make_server(name="suspect")
    mark_suspect(suspect, error="connect failed")
    full = make_server(name="full", daily_limit=2)
    assert quota.reserve(full, 2) == 2
    make_config()

    pool = load_pool()
    names = {pool.pick().name for _ in range(20)}

    assert names == {ok.name}


@pytest.mark.django_db
def test_single_picks_from_fresh_snapshots_still_rotate():
    # send_email takes one pick per snapshot; the shared cursor keeps them from all landing on server 1.
    servers = [make_server(name=f"rr-{i}") for i in range(3)]
    make_config(strategy=RotationStrategy.ROUND_ROBIN)
    picks = Counter(load_pool().pick().name for _ in range(30))
    assert picks == {s.name: 10 for s in servers}


@pytest.mark.django_db
def test_the_strategy_can_be_changed_at_runtime():
    make_server(name="low", reputation=50.0)
    make_server(name="high", reputation=99.0)
    make_config(strategy=RotationStrategy.ROUND_ROBIN)
    assert {load_pool().pick().name for _ in range(4)} == {"low", "high"}

    set_rotation_strategy(strategy=RotationStrategy.BEST_PERFORMANCE)

    pool = load_pool()
    assert pool.strategy == RotationStrategy.BEST_PERFORMANCE
    assert {pool.pick().name for _ in range(20)} == {"high"}

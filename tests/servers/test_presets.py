from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models.deletion import ProtectedError

from servers.configuration import get_presets, load_preset, recommend_preset
from servers.models import Preset, Server, ServerKind, WarmupSchedule

pytestmark = pytest.mark.django_db

# The seed table in DESIGN.md: key, servers, per-server limit, SendGrid/day, per day, per month, $/month, setup, tier, ★
SEED = [
    ("starter", 1, 500, 0, 500, 15_000, 25, 0, "starter", True),
    ("basic-dual", 2, 500, 0, 1_000, 30_000, 50, 0, "starter", False),
    ("starter-triple", 3, 500, 0, 1_500, 45_000, 75, 0, "starter", False),
    ("professional", 5, 500, 0, 2_500, 75_000, 125, 50, "professional", True),
    ("professional-plus", 7, 500, 0, 3_500, 105_000, 175, 70, "professional", False),
    ("business", 10, 500, 0, 5_000, 150_000, 250, 100, "business", True),
    ("business-advanced", 12, 500, 0, 6_000, 180_000, 300, 120, "business", False),
    ("enterprise", 15, 500, 0, 7_500, 225_000, 375, 150, "enterprise", True),
    ("enterprise-plus", 20, 500, 0, 10_000, 300_000, 500, 200, "enterprise", False),
    ("enterprise-ultimate", 25, 500, 0, 12_500, 375_000, 625, 250, "enterprise", False),
    ("hybrid-basic", 3, 500, 1_500, 3_000, 90_000, 95, 0, "hybrid", True),
    ("hybrid-professional", 5, 500, 3_500, 6_000, 180_000, 215, 0, "hybrid", False),
    ("geographic-distributed", 12, 500, 0, 6_000, 180_000, 300, 150, "specialized", False),
    ("high-volume-burst", 15, 800, 8_000, 20_000, 600_000, 450, 200, "specialized", False),
    ("ultra-secure", 20, 200, 0, 4_000, 120_000, 400, 150, "specialized", False),
]


DEFAULT, EXTENDED = "default-6-day", "extended-10-day"
GEO_REGIONS = ["US"] * 4 + ["EU"] * 4 + ["LATAM"] * 4
GEO_RULES = {".com": "US", ".eu": "EU", ".es": "EU", ".mx": "LATAM", ".br": "LATAM", ".ar": "LATAM"}
# How each preset sends, from the seed's preset list and DESIGN.md's notes: the 6-day warm-up
# and no delay unless the seed says otherwise ("Warmup Extendido: 10 días", "Delay: 2
# segundos"); a region per server and routing rules only for geographic-distributed.
# key: warm-up schedule, seconds between emails, region of each server, routing rules
SENDING = {
    "starter": (DEFAULT, 0, [], {}),
    "basic-dual": (DEFAULT, 0, [], {}),
    "starter-triple": (DEFAULT, 0, [], {}),
    "professional": (DEFAULT, 0, [], {}),
    "professional-plus": (DEFAULT, 0, [], {}),
    "business": (DEFAULT, 0, [], {}),
    "business-advanced": (DEFAULT, 0, [], {}),
    "enterprise": (DEFAULT, 0, [], {}),
    "enterprise-plus": (DEFAULT, 0, [], {}),
    "enterprise-ultimate": (DEFAULT, 0, [], {}),
    "hybrid-basic": (DEFAULT, 0, [], {}),
    "hybrid-professional": (DEFAULT, 0, [], {}),
    "geographic-distributed": (DEFAULT, 0, GEO_REGIONS, GEO_RULES),
    "high-volume-burst": (DEFAULT, 0, [], {}),
    "ultra-secure": (EXTENDED, 2, [], {}),
}


def test_the_seed_ships_exactly_fifteen_presets_in_its_order():
    assert list(get_presets()) == [row[0] for row in SEED] == list(SENDING)


@pytest.mark.parametrize("row", SEED, ids=[r[0] for r in SEED])
def test_each_preset_matches_the_seed_table(row):
    key, servers, limit, sendgrid, per_day, per_month, monthly, setup, tier, recommended = row
    preset = Preset.objects.get(key=key)
    assert preset.smtp_servers == servers
    assert preset.daily_limit_per_server == limit
    assert preset.sendgrid_daily_limit == sendgrid
    assert preset.emails_per_day == per_day
    assert preset.emails_per_month == per_month
    assert preset.monthly_cost == Decimal(monthly)
    assert preset.setup_cost == Decimal(setup)
    assert preset.tier == tier
    assert preset.recommended is recommended
    assert preset.is_builtin


@pytest.mark.parametrize("key", list(SENDING))
def test_each_preset_has_the_seeds_warm_up_delay_and_regions(key):
    schedule, delay, regions, rules = SENDING[key]
    preset = Preset.objects.select_related("warmup_schedule").get(key=key)
    assert preset.warmup_schedule.key == schedule
    assert preset.min_delay_seconds == delay
    assert preset.regions == regions
    assert preset.routing_rules == rules


@pytest.mark.parametrize("key", list(SENDING))
def test_loading_a_preset_gives_its_servers_that_warm_up_delay_and_regions(key):
    schedule, delay, regions, rules = SENDING[key]
    config = load_preset(key)
    servers = list(Server.objects.filter(kind=ServerKind.SMTP, in_pool=True).select_related("warmup_schedule")
                   .order_by("slot"))
    assert len(servers) == config.server_count
    assert {(s.warmup_enabled, s.warmup_schedule.key, s.min_delay_seconds) for s in servers} == {(True, schedule, delay)}
    assert [s.region for s in servers] == (regions or [""] * len(servers))
    assert config.routing_rules == rules
    assert (config.warmup_schedule.key, config.min_delay_seconds) == (schedule, delay)


@pytest.mark.parametrize(
    "key,expected",
    [("starter", "1.67"), ("basic-dual", "1.67"), ("professional", "1.67"), ("business", "1.67"),
     ("enterprise", "1.67"), ("hybrid-basic", "1.06"), ("hybrid-professional", "1.19")],
)
def test_cost_per_thousand_matches_the_seed_comparison_table(key, expected):
    assert Preset.objects.get(key=key).cost_per_1000 == Decimal(expected)


def test_hybrid_costs_split_smtp_and_sendgrid_as_the_seed_does():
    basic = Preset.objects.get(key="hybrid-basic")
    pro = Preset.objects.get(key="hybrid-professional")
    assert (basic.smtp_monthly_cost, basic.sendgrid_monthly_cost) == (Decimal(75), Decimal(20))
    assert (pro.smtp_monthly_cost, pro.sendgrid_monthly_cost) == (Decimal(125), Decimal(90))


def test_geographic_preset_has_four_servers_per_region_and_the_seed_routing_rules():
    geo = Preset.objects.get(key="geographic-distributed")
    assert geo.regions == ["US"] * 4 + ["EU"] * 4 + ["LATAM"] * 4
    assert geo.routing_rules == {".com": "US", ".eu": "EU", ".es": "EU", ".mx": "LATAM", ".br": "LATAM", ".ar": "LATAM"}


def test_ultra_secure_uses_the_ten_day_warmup_and_two_second_delay():
    preset = Preset.objects.get(key="ultra-secure")
    assert preset.warmup_schedule.key == "extended-10-day"
    assert preset.warmup_schedule.full_capacity_day == 10
    assert preset.min_delay_seconds == 2


def test_the_ten_day_schedule_ends_at_the_servers_own_limit():
    schedule = WarmupSchedule.objects.get(key="extended-10-day")
    caps = [schedule.cap_for_day(day, 200) for day in range(1, 12)]
    assert caps == sorted(caps)
    assert caps[0] > 0
    assert caps[-1] == 200


def test_the_default_schedule_is_50_100_200_300_400_then_full():
    schedule = WarmupSchedule.objects.get(key="default-6-day")
    assert [schedule.cap_for_day(d, 500) for d in range(1, 9)] == [50, 100, 200, 300, 400, 500, 500, 500]


@pytest.mark.parametrize(
    "volume,key",
    [(0, "starter"), (499, "starter"), (500, "starter"), (501, "starter-triple"), (1500, "starter-triple"),
     (1501, "professional"), (3000, "professional"), (3001, "business"), (6000, "business"), (6001, "enterprise"),
     (50_000, "enterprise")],
)
def test_volume_recommendation_follows_the_faq(volume, key):
    assert recommend_preset(volume) == key


def test_the_seeds_presets_cannot_be_deleted():
    with pytest.raises(ProtectedError), transaction.atomic():
        Preset.objects.get(key="starter").delete()
    with pytest.raises(ProtectedError), transaction.atomic():
        Preset.objects.filter(key__in=["business", "enterprise"]).delete()
    assert Preset.objects.count() == 15


def test_an_operator_saved_preset_can_be_deleted():
    from servers.configuration import create_custom_config, save_as_preset

    config = create_custom_config(name="Eight", server_count=8, daily_limit_per_server=600)
    preset = save_as_preset(configuration=config, key="eight-pool", name="Eight servers")
    assert preset.emails_per_day == 4800 and not preset.is_builtin
    preset.delete()
    assert not Preset.objects.filter(key="eight-pool").exists()

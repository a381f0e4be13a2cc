from __future__ import annotations

import pytest

from mailops.errors import DomainError
from servers import configuration
from servers.models import Configuration, Server, ServerDailyStat, ServerKind, ServerState

pytestmark = pytest.mark.django_db


def test_custom_capacity_is_servers_times_limit_plus_sendgrid():
    config = configuration.create_custom_config(
        name="Mi Configuración Personalizada", server_count=8, daily_limit_per_server=600,
        include_sendgrid=True, sendgrid_daily_limit=2000, warmup_enabled=True,
    )
    assert config.emails_per_day == 6800
    assert config.emails_per_month == 204_000
    assert config.tier == "custom"
    pool = Server.objects.filter(in_pool=True)
    assert pool.filter(kind=ServerKind.SMTP).count() == 8
    assert pool.filter(kind=ServerKind.SENDGRID, priority=2, daily_limit=2000).count() == 1


def test_sendgrid_without_a_limit_covers_as_much_as_the_smtp_servers_together():
    # The seed's own endpoint example sends includeSendGrid with no sendGridDailyLimit.
    config = configuration.create_custom_config(
        name="My Custom Setup", server_count=8, daily_limit_per_server=600, include_sendgrid=True
    )
    assert config.emails_per_day == 8 * 600 * 2
    assert Server.objects.get(kind=ServerKind.SENDGRID, in_pool=True).daily_limit == 4800


def test_custom_without_sendgrid_ignores_its_limit():
    config = configuration.create_custom_config(name="x", server_count=3, daily_limit_per_server=100, sendgrid_daily_limit=999)
    assert config.emails_per_day == 300
    assert not Server.objects.get(kind=ServerKind.SENDGRID).in_pool


def test_regions_spread_servers_evenly_in_blocks():
    configuration.create_custom_config(name="Global", server_count=9, daily_limit_per_server=500, regions=["US", "EU", "LATAM"])
    regions = list(Server.objects.filter(kind=ServerKind.SMTP, in_pool=True).order_by("slot").values_list("region", flat=True))
    assert regions == ["US"] * 3 + ["EU"] * 3 + ["LATAM"] * 3
    config = Configuration.objects.get(is_active=True)
    assert config.routing_rules[".es"] == "EU" and config.routing_rules[".mx"] == "LATAM"


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"server_count": 0, "daily_limit_per_server": 500}, "serverCount"),
        ({"server_count": -3, "daily_limit_per_server": 500}, "serverCount"),
        ({"server_count": 2, "daily_limit_per_server": 0}, "dailyLimitPerServer"),
        ({"server_count": 2, "daily_limit_per_server": -1}, "dailyLimitPerServer"),
        ({"server_count": 2.5, "daily_limit_per_server": 100}, "serverCount"),
        ({"server_count": "many", "daily_limit_per_server": 100}, "serverCount"),
        ({"server_count": 2, "daily_limit_per_server": 100, "include_sendgrid": True, "sendgrid_daily_limit": -5}, "sendGridDailyLimit"),
    ],
)
def test_bad_custom_numbers_are_refused_with_the_field_named(kwargs, field):
    with pytest.raises(DomainError) as err:
        configuration.create_custom_config(name="bad", **kwargs)
    assert err.value.field == field
    assert not Configuration.objects.exists()


def test_only_one_configuration_is_active_at_a_time():
    configuration.load_preset("starter")
    configuration.load_preset("business")
    configuration.change_configuration("custom", {"name": "c", "serverCount": 2, "dailyLimitPerServer": 10})
    assert Configuration.objects.filter(is_active=True).count() == 1
    assert Configuration.objects.count() == 3


def test_switching_presets_keeps_each_servers_statistics_and_warmup(smtp_env):
    smtp_env([2601, 2602, 2603, 2604, 2605])
    configuration.load_preset("professional")
    third = Server.objects.get(kind=ServerKind.SMTP, slot=3)
    ServerDailyStat.objects.create(server=third, day="2026-12-01", sent=120, delivered=115, failed=5)
    configuration.advance_warmup_day(third)

    configuration.load_preset("starter")  # slot 3 leaves the pool
    third.refresh_from_db()
    assert not third.in_pool
    configuration.load_preset("business")  # and comes back, with its history
    back = Server.objects.get(kind=ServerKind.SMTP, slot=3)
    assert back.pk == third.pk and back.in_pool
    assert back.warmup_manual_advance == 1
    assert ServerDailyStat.objects.get(server=back).sent == 120
    assert Server.objects.filter(kind=ServerKind.SMTP).count() == 10


def test_env_slots_supply_credentials_and_others_stay_unconfigured(monkeypatch):
    monkeypatch.setenv("SMTP_HOST_1", "smtp1.example.test")
    monkeypatch.setenv("SMTP_PORT_1", "2525")
    monkeypatch.setenv("SMTP_USER_1", "user1")
    monkeypatch.setenv("SMTP_PASSWORD_1", "pw-one")
    monkeypatch.setenv("SMTP_IP_1", "203.0.113.1")
    monkeypatch.setenv("SMTP_REGION_1", "EU")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test-key.value")
    configuration.load_preset("hybrid-basic")
    one = Server.objects.get(kind=ServerKind.SMTP, slot=1)
    assert (one.host, one.port, one.username, one.password, one.ip_address, one.region) == (
        "smtp1.example.test", 2525, "user1", "pw-one", "203.0.113.1", "EU")
    assert one.state == ServerState.ACTIVE
    two = Server.objects.get(kind=ServerKind.SMTP, slot=2)
    assert two.state == ServerState.UNCONFIGURED and not two.is_sendable
    sendgrid = Server.objects.get(kind=ServerKind.SENDGRID)
    assert sendgrid.state == ServerState.ACTIVE and sendgrid.api_key == "SG.test-key.value"


def test_a_bad_port_variable_is_reported(monkeypatch):
    monkeypatch.setenv("SMTP_HOST_1", "smtp1.example.test")
    monkeypatch.setenv("SMTP_PORT_1", "twenty-five")
    with pytest.raises(DomainError, match="SMTP_PORT_1"):
        configuration.load_preset("starter")


def test_smtp_bind_n_turns_source_address_binding_on_and_off(monkeypatch):
    monkeypatch.setenv("SMTP_HOST_1", "smtp1.example.test")
    monkeypatch.setenv("SMTP_IP_1", "203.0.113.1")
    monkeypatch.setenv("SMTP_BIND_1", "true")
    configuration.load_preset("starter")
    assert Server.objects.get(kind=ServerKind.SMTP, slot=1).bind_source_address is True

    monkeypatch.setenv("SMTP_BIND_1", "false")
    configuration.load_preset("starter")
    assert Server.objects.get(kind=ServerKind.SMTP, slot=1).bind_source_address is False


def test_a_bad_bind_variable_is_reported(monkeypatch):
    monkeypatch.setenv("SMTP_HOST_1", "smtp1.example.test")
    monkeypatch.setenv("SMTP_BIND_1", "maybe")
    with pytest.raises(DomainError, match="SMTP_BIND_1 must be true or false"):
        configuration.load_preset("starter")


def test_unknown_preset_lists_the_valid_keys():
    with pytest.raises(DomainError) as err:
        configuration.load_preset("platinum")
    assert "professional" in err.value.message and "ultra-secure" in err.value.message


def test_the_plan_shows_servers_added_kept_and_removed(smtp_env):
    configuration.load_preset("starter-triple")
    plan = configuration.plan_change("preset", "professional")
    assert plan.servers_kept == ["SMTP Server 1", "SMTP Server 2", "SMTP Server 3"]
    assert plan.servers_added == ["SMTP Server 4", "SMTP Server 5"]
    assert plan.previous_capacity == 1500 and plan.emails_per_day == 2500
    shrink = configuration.plan_change("preset", "starter")
    assert shrink.servers_removed == ["SMTP Server 2", "SMTP Server 3"]


def test_rotation_strategy_changes_at_runtime():
    configuration.load_preset("starter")
    configuration.set_rotation_strategy(strategy="least-used")
    assert Configuration.objects.get(is_active=True).rotation_strategy == "least-used"
    with pytest.raises(DomainError):
        configuration.set_rotation_strategy(strategy="fastest")
    configuration.load_preset("business")
    assert Configuration.objects.get(is_active=True).rotation_strategy == "least-used"  # kept across switches

from __future__ import annotations

import datetime as dt

import pytest

from servers import reputation
from servers.models import Server, ServerDailyStat
from servers.reputation import Window, score
from tests.support.monitoring import make_server, stat

TODAY = dt.date(2026, 3, 10)


def test_a_server_with_no_history_has_full_reputation():
    result = score(Window())

    assert result.score == 100.0
    assert result.penalties == {"listings": 0.0, "health": 0.0}


def test_clean_sending_keeps_full_reputation():
    assert score(Window(sent=5000, health_checks=288)).score == 100.0


def test_rate_penalties_wait_for_a_minimum_sample():
    few = Window(sent=15, bounced=4)  # judged = 19
    enough = Window(sent=16, bounced=4)  # judged = 20

    assert few.judged == 19
    assert score(few).score == 100.0
    assert "bounces" not in score(few).penalties
    assert score(enough).penalties["bounces"] == 30.0


@pytest.mark.parametrize(
    ("bounced", "penalty"),
    [(0, 0.0), (10, 10.0), (20, 20.0), (30, 30.0), (100, 30.0)],
)
def test_hard_bounces_cost_ten_points_per_percent_up_to_thirty(bounced, penalty):
    window = Window(sent=1000 - bounced, bounced=bounced)  # judged = 1000

    assert score(window).penalties["bounces"] == penalty
    assert score(window).score == 100.0 - penalty


@pytest.mark.parametrize(
    ("complained", "penalty"),
    [(0, 0.0), (5, 5.0), (10, 10.0), (30, 30.0), (50, 30.0)],
)
def test_complaints_cost_ten_points_per_tenth_of_a_percent_of_delivered_up_to_thirty(complained, penalty):
    window = Window(sent=10_000, complained=complained)

    assert score(window).penalties["complaints"] == penalty


def test_complaints_are_measured_against_delivered_mail_not_sent_mail():
    # 1000 accepted, 500 returned later: 5 complaints over 500 delivered is 1%.
    window = Window(sent=1000, returned=500, bounced=500, complained=5)

    assert window.delivered == 500
    assert score(window).penalties["complaints"] == 30.0


def test_an_async_bounce_is_counted_once_in_judged_messages():
    window = Window(sent=1990, returned=10, bounced=15, failed=5)

    # 1990 accepted + 5 refused at RCPT + 5 failed; the 10 returned are already in "sent".
    assert window.judged == 2000
    assert window.delivered == 1980
    assert score(window).penalties["bounces"] == 7.5


@pytest.mark.parametrize(("deferred", "penalty"), [(0, 0.0), (100, 5.0), (300, 15.0), (1000, 15.0)])
def test_deferrals_cost_half_a_point_per_percent_of_attempts_up_to_fifteen(deferred, penalty):
    window = Window(sent=1000 - deferred, deferred=deferred)  # attempts = 1000

    assert score(window).penalties["deferrals"] == penalty


@pytest.mark.parametrize(("failed", "unknown", "penalty"), [(0, 0, 0.0), (30, 20, 5.0), (150, 50, 20.0), (500, 0, 20.0)])
def test_failed_and_unknown_messages_cost_a_point_per_percent_up_to_twenty(failed, unknown, penalty):
    window = Window(sent=1000 - failed - unknown, failed=failed, unknown=unknown)

    assert score(window).penalties["delivery"] == penalty


@pytest.mark.parametrize(("days", "expected"), [(0, 100.0), (1, 85.0), (2, 70.0), (3, 55.0), (7, 55.0)])
def test_each_listed_day_costs_fifteen_points_up_to_forty_five(days, expected):
    assert score(Window(listed_days=days)).score == expected


def test_listings_count_even_without_enough_mail_for_rates():
    assert score(Window(sent=3, listed_days=1)).score == 85.0


@pytest.mark.parametrize(("failures", "penalty"), [(0, 0.0), (25, 5.0), (50, 10.0), (100, 10.0)])
def test_failed_health_checks_cost_up_to_ten_points(failures, penalty):
    assert score(Window(health_checks=100, health_failures=failures)).penalties["health"] == penalty


def test_the_score_never_goes_below_zero():
    worst = Window(sent=500, bounced=500, complained=500, deferred=5000, failed=500, listed_days=7,
                   health_checks=10, health_failures=10)

    assert sum(score(worst).penalties.values()) == 150.0
    assert score(worst).score == 0.0


def test_penalties_add_up():
    window = Window(sent=960, bounced=20, failed=20, complained=1, deferred=0, health_checks=4, health_failures=1)
    # judged 1000: bounces 2% -> 20; complaints 1/960 -> 10.42; delivery 2% -> 2; health 25% -> 5
    result = score(window)

    assert result.penalties == {
        "bounces": 20.0, "complaints": 10.42, "deferrals": 0.0, "delivery": 2.0, "listings": 0.0, "health": 5.0
    }
    assert result.score == 62.6


@pytest.mark.django_db
def test_the_window_is_the_last_seven_sending_days():
    server = make_server(1)
    stat(server, 0, today=TODAY, sent=100)
    stat(server, 6, today=TODAY, sent=100, listed=True)
    stat(server, 7, today=TODAY, sent=100, bounced=100, listed=True)

    window = reputation.windows([server.pk], day=TODAY)[server.pk]

    assert window.sent == 200
    assert window.bounced == 0
    assert window.listed_days == 1


@pytest.mark.django_db
def test_recompute_stores_the_score_on_the_server_and_todays_stat_row():
    listed = make_server(1)
    clean = make_server(2)
    idle = make_server(3)
    stat(listed, 1, today=TODAY, sent=200, listed=True)
    stat(clean, 0, today=TODAY, sent=200)

    scores = reputation.recompute(day=TODAY)

    assert scores == {listed.pk: 85.0, clean.pk: 100.0, idle.pk: 100.0}
    assert Server.objects.get(pk=listed.pk).reputation == 85.0
    assert ServerDailyStat.objects.get(server=listed, day=TODAY).reputation == 85.0
    assert ServerDailyStat.objects.get(server=clean, day=TODAY).reputation == 100.0
    assert ServerDailyStat.objects.get(server=clean, day=TODAY).sent == 200


@pytest.mark.django_db
def test_recompute_does_not_create_rows_for_servers_outside_the_pool_without_history():
    outside = make_server(1, in_pool=False)

    reputation.recompute(day=TODAY)

    assert not ServerDailyStat.objects.filter(server=outside).exists()

"""The formatting filters the templates lean on."""

from __future__ import annotations

from decimal import Decimal

from django.utils import translation

from dashboard.templatetags.ui import breakable, money, num, percent


def test_money_drops_cents_only_on_whole_amounts():
    with translation.override("en"):
        assert money(Decimal("125.00")) == "$125"
        assert money(Decimal("1.666")) == "$1.67"
        assert money(Decimal("1250")) == "$1,250"
        assert money(None) == "–"


def test_numbers_are_grouped_in_the_readers_language():
    with translation.override("en"):
        assert num(75000) == "75,000"
    with translation.override("es"):
        assert num(75000) == "75\xa0000"
    assert num(None) == "–"


def test_percent_survives_an_empty_total():
    assert percent(20, 50) == 40
    assert percent(5, 0) == 0
    assert percent("x", 10) == 0


def test_breakable_escapes_before_adding_break_points():
    assert breakable("50/100/full") == "50/<wbr>100/<wbr>full"
    assert breakable("<b>/x") == "&lt;b&gt;/<wbr>x"

"""Data migrations run against rows written under the schema before them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("campaigns", "0002_dispatch_indexes")]
AFTER = [("campaigns", "0004_prospect_address_unique_ignoring_case")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_prospects_differing_only_in_case_are_merged_into_the_oldest():
    apps = migrate(BEFORE)
    try:
        ProspectList = apps.get_model("campaigns", "ProspectList")
        Prospect = apps.get_model("campaigns", "Prospect")
        Message = apps.get_model("campaigns", "Message")
        spain = ProspectList.objects.create(name="Spain", prospect_count=4)
        other = ProspectList.objects.create(name="Other", prospect_count=1)
        first = Prospect.objects.create(prospect_list=spain, email="ana@example.com", company="Alpha", custom={"city": ""})
        later = Prospect.objects.create(
            prospect_list=spain, email="Ana@example.com", name="Ana", company="Other", custom={"city": "Sevilla"}
        )
        Prospect.objects.create(prospect_list=spain, email="ANA@EXAMPLE.COM", country="ES")
        Prospect.objects.create(prospect_list=spain, email="bea@example.com")
        Prospect.objects.create(prospect_list=other, email="ANA@example.com")
        sent = Message.objects.create(prospect=later, to_email=later.email)
    finally:
        apps = migrate(AFTER)

    Prospect = apps.get_model("campaigns", "Prospect")
    kept = Prospect.objects.get(prospect_list_id=spain.pk, email__iexact="ana@example.com")
    assert kept.pk == first.pk
    assert (kept.email, kept.name, kept.company, kept.country, kept.custom) == (
        "ana@example.com", "Ana", "Alpha", "ES", {"city": "Sevilla"}
    )
    assert Prospect.objects.filter(prospect_list_id=spain.pk).count() == 2
    assert Prospect.objects.filter(prospect_list_id=other.pk).count() == 1
    assert apps.get_model("campaigns", "ProspectList").objects.get(pk=spain.pk).prospect_count == 2
    message = apps.get_model("campaigns", "Message").objects.get(pk=sent.pk)
    assert (message.prospect_id, message.to_email) == (None, "Ana@example.com")

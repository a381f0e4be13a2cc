"""Merge prospects of one list whose addresses differ only in case, before 0004 forbids them.

The first prospect (lowest id) is kept and its empty fields are filled from the later ones,
as an import merges a duplicate; the later ones are deleted (their messages keep their
address and lose only the link). Lower() here is the database's, the same function the
unique index in 0004 uses, so every group this finds is one that index would refuse.
"""

from __future__ import annotations

from django.db import migrations
from django.db.models import Count
from django.db.models.functions import Lower

FIELDS = ("name", "company", "country")


def merge(apps, schema_editor):
    Prospect = apps.get_model("campaigns", "Prospect")
    ProspectList = apps.get_model("campaigns", "ProspectList")
    addressed = Prospect.objects.annotate(address=Lower("email"))
    groups = list(
        addressed.values("prospect_list_id", "address").annotate(n=Count("pk")).filter(n__gt=1).order_by()
    )
    touched = set()
    for group in groups:
        first, *later = addressed.filter(
            prospect_list_id=group["prospect_list_id"], address=group["address"]
        ).order_by("pk")
        custom = dict(first.custom or {})
        for other in later:
            for field in FIELDS:
                if not getattr(first, field) and getattr(other, field):
                    setattr(first, field, getattr(other, field))
            for key, value in (other.custom or {}).items():
                if value and not custom.get(key):
                    custom[key] = value
        first.custom = custom
        first.save(update_fields=[*FIELDS, "custom"])
        Prospect.objects.filter(pk__in=[p.pk for p in later]).delete()
        touched.add(group["prospect_list_id"])
    for list_id in touched:
        ProspectList.objects.filter(pk=list_id).update(
            prospect_count=Prospect.objects.filter(prospect_list_id=list_id).count()
        )


class Migration(migrations.Migration):

    dependencies = [
        ("campaigns", "0002_dispatch_indexes"),
    ]

    operations = [
        migrations.RunPython(merge, migrations.RunPython.noop),
    ]

# A migration of its own after 0003: on PostgreSQL, 0003's deletes leave deferred foreign-key
# checks pending, and the table cannot be altered in the transaction that holds them.

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("campaigns", "0003_merge_prospects_differing_in_case"),
    ]

    operations = [
        migrations.AlterField(
            model_name="prospect",
            name="prospect_list",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="prospects",
                to="campaigns.prospectlist",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="prospect",
            name="one_prospect_per_list_email",
        ),
        migrations.AddConstraint(
            model_name="prospect",
            constraint=models.UniqueConstraint(
                models.F("prospect_list"),
                django.db.models.functions.text.Lower("email"),
                name="one_prospect_per_list_address",
            ),
        ),
    ]

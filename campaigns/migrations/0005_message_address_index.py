import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("campaigns", "0004_prospect_address_unique_ignoring_case"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(django.db.models.functions.text.Lower("to_email"), name="message_address"),
        ),
    ]

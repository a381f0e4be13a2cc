from django.db import migrations


def roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ("operators", "viewers"):
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("servers", "0003_monitoring"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(roles, migrations.RunPython.noop)]

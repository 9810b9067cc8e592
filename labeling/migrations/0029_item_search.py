"""Full-text index over item payloads (PostgreSQL only; SQLite searches without an index)."""

from django.db import migrations

from common.db.search import CREATE_INDEX, DROP_INDEX


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_INDEX)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_INDEX)


class Migration(migrations.Migration):
    dependencies = [("labeling", "0028_import_jobs")]

    operations = [migrations.RunPython(forwards, backwards)]

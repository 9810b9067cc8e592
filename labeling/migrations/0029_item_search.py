"""Full-text index over item payloads (PostgreSQL only; SQLite searches without an index). Migration
0033 replaces this expression index with one on a stored column."""

from django.db import migrations

INDEX = "item_payload_fts"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON \"labeling_item\" "
            "USING gin (jsonb_to_tsvector('simple', payload, '[\"string\"]'))"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("labeling", "0028_import_jobs")]

    operations = [migrations.RunPython(forwards, backwards)]

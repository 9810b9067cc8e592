"""Items' search vector stored (PostgreSQL only): a generated tsvector column of the payload's string
values with a GIN index on it, replacing the index on the expression (0029). On an existing database
adding the column rewrites the item table, computing every row's vector, under an exclusive lock:
plan it for a quiet moment on a big table (benchmarks/README.md has the time on 1,000,000 items)."""

from django.db import migrations

from common.db.search import ADD_COLUMN, CREATE_INDEX, DROP_COLUMN, DROP_INDEX

OLD_INDEX = "item_payload_fts"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ADD_COLUMN)
        schema_editor.execute(CREATE_INDEX)
        schema_editor.execute(f"DROP INDEX IF EXISTS {OLD_INDEX}")
        schema_editor.execute('ANALYZE "labeling_item"')  # the new column's statistics, for the planner


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {OLD_INDEX} ON \"labeling_item\" "
            "USING gin (jsonb_to_tsvector('simple', payload, '[\"string\"]'))"
        )
        schema_editor.execute(DROP_INDEX)
        schema_editor.execute(DROP_COLUMN)


class Migration(migrations.Migration):
    dependencies = [("labeling", "0032_annotation_edits")]

    operations = [migrations.RunPython(forwards, backwards)]

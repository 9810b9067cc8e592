"""Indexes for the bug stream at scale: its default order, a bug's breakdown and occurrence series
read from indexes, and trigram indexes for free-text search (PostgreSQL only: pg_trgm)."""

from django.db import migrations, models


def trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS bug_title_trgm ON bugqueue_bug USING gin (UPPER(title::text) gin_trgm_ops)"
    )
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS bug_description_trgm ON bugqueue_bug USING gin (UPPER(description) gin_trgm_ops)"
    )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS bug_title_trgm")
    schema_editor.execute("DROP INDEX IF EXISTS bug_description_trgm")


class Migration(migrations.Migration):
    dependencies = [
        ("bugqueue", "0009_regroup_default_fingerprints"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="bug",
            index=models.Index(
                fields=["project", "priority", "-occurrences", "-last_seen", "id"], name="bug_stream_priority"
            ),
        ),
        migrations.AddIndex(
            model_name="failureexample",
            index=models.Index(
                fields=["bug", "model_version", "predicted_label", "expected_label"],
                name="failure_bug_breakdown",
                include=["occurred_at"],
            ),
        ),
        migrations.RemoveIndex(model_name="bugoccurrence", name="occurrence_bug_time"),
        migrations.AddIndex(
            model_name="bugoccurrence",
            index=models.Index(fields=["bug", "seen_at"], include=["count"], name="occurrence_bug_time_count"),
        ),
        migrations.RunPython(trigram_indexes, drop_trigram_indexes, elidable=False),
    ]

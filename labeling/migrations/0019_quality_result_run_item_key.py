"""QualityItemResult's primary key becomes (run, item): the id column, its index and its sequence go.

Django does not migrate a primary key to a composite one by itself: the state changes here, and the
table is changed below (PostgreSQL: in place; SQLite: rebuilt from the new model, as Django's own
SQLite schema changes are)."""

from django.db import migrations, models


def forwards(apps, schema_editor):
    model = apps.get_model("labeling", "QualityItemResult")
    table = model._meta.db_table
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT quality_result_run_item")
        schema_editor.execute(f"ALTER TABLE {table} DROP COLUMN id")
        schema_editor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (run_id, item_id)")
    else:
        schema_editor._remake_table(model)


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0018_quality_result_review_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="qualityitemresult", name="quality_result_run_item"),
                migrations.RemoveField(model_name="qualityitemresult", name="id"),
                migrations.AddField(
                    model_name="qualityitemresult",
                    name="pk",
                    field=models.CompositePrimaryKey("run", "item", blank=True, editable=False, primary_key=True, serialize=False),
                ),
            ],
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]

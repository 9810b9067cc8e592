# Every item and prediction insert paid for these indexes: the foreign-key indexes repeat the prefix
# of a unique index ((project, external_id) and (item, model_version)), and no query filters
# predictions by model version across projects.
#
# The foreign keys' indexes are dropped with plain SQL: Django's AlterField would rebuild both
# tables on SQLite (and fails there on this schema); on SQLite the two indexes are simply kept.

import django.db.models.deletion
from django.db import migrations, models

FK_INDEXES = ("labeling_item_project_id_79d60f44", "labeling_prediction_item_id_b2b0be9a")


def drop_fk_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in FK_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def restore_fk_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {FK_INDEXES[0]} ON labeling_item (project_id)")
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {FK_INDEXES[1]} ON labeling_prediction (item_id)")


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0008_feedback_bins_fk'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='prediction',
            name='prediction_version_time',
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='item',
                    name='project',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='items', to='labeling.project'),
                ),
                migrations.AlterField(
                    model_name='prediction',
                    name='item',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='predictions', to='labeling.item'),
                ),
            ],
            database_operations=[migrations.RunPython(drop_fk_indexes, restore_fk_indexes)],
        ),
    ]

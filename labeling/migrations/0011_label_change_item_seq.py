# Compact exports ask, for every change, whether its item changed again later: an (item, seq) index
# answers that from the index alone. It replaces the foreign keys' own single-column indexes, whose
# work (project_id, item_id) the (project, seq) and (item, seq) indexes already do. As in 0009, the
# old indexes are dropped with plain SQL on PostgreSQL only (AlterField would rebuild the table on
# SQLite, where they are simply kept).

import django.db.models.deletion
from django.db import migrations, models

FK_INDEXES = ("labeling_labelchange_item_id_de8dfd5f", "labeling_labelchange_project_id_119c4557")


def drop_fk_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in FK_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def restore_fk_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {FK_INDEXES[0]} ON labeling_labelchange (item_id)")
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {FK_INDEXES[1]} ON labeling_labelchange (project_id)")


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0010_label_change_external_id"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="labelchange",
            index=models.Index(fields=["item", "seq"], name="label_change_item_seq"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="labelchange",
                    name="item",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="label_changes", to="labeling.item"),
                ),
                migrations.AlterField(
                    model_name="labelchange",
                    name="project",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="label_changes", to="labeling.project"),
                ),
            ],
            database_operations=[migrations.RunPython(drop_fk_indexes, restore_fk_indexes)],
        ),
    ]

# Annotations carry their item's project (an item never changes project), indexed with the id, so
# that per-project reads of annotations (the delay report's staffing sample, the managers' list,
# agreement) no longer walk every project's annotations: with 900,000 annotations in another project
# and none in this one, the staffing sample alone took a second.

import django.db.models.deletion
from django.db import migrations, models


def copy_projects(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE labeling_annotation a SET project_id = i.project_id FROM labeling_item i WHERE i.id = a.item_id"
        )
    else:
        schema_editor.execute(
            "UPDATE labeling_annotation SET project_id = "
            "(SELECT project_id FROM labeling_item WHERE labeling_item.id = labeling_annotation.item_id)"
        )


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0011_label_change_item_seq"),
    ]

    operations = [
        migrations.AddField(
            model_name="annotation",
            name="project",
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="+", to="labeling.project"),
        ),
        migrations.RunPython(copy_projects, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="annotation",
            name="project",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="+", to="labeling.project"),
        ),
        migrations.AddIndex(
            model_name="annotation",
            index=models.Index(fields=["project", "id"], name="annotation_project_id"),
        ),
    ]

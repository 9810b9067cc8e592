# Prediction.vector: the probabilities as big-endian float64 in the project's label order, so that
# bulk reads skip parsing jsonb. Existing rows are filled here; a row whose probabilities do not
# cover every label (none should) keeps NULL and is read from its jsonb.

import struct

from django.db import migrations, models

BACKFILL_SQL = """
UPDATE labeling_prediction p SET vector = v.vec
FROM (
    SELECT p2.id, string_agg(float8send((p2.probabilities ->> l.key)::float8), ''::bytea ORDER BY l.position, l.id) AS vec
    FROM labeling_prediction p2
    JOIN labeling_item i ON i.id = p2.item_id
    JOIN labeling_labelclass l ON l.project_id = i.project_id
    WHERE p2.probabilities IS NOT NULL AND jsonb_typeof(p2.probabilities) = 'object'
    GROUP BY p2.id
    HAVING count(p2.probabilities ->> l.key) = count(*)
) v
WHERE v.id = p.id
"""


def backfill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKFILL_SQL)
        return
    Prediction = apps.get_model("labeling", "Prediction")
    LabelClass = apps.get_model("labeling", "LabelClass")
    orders = {}
    for project_id, key in LabelClass.objects.order_by("project_id", "position", "id").values_list("project_id", "key"):
        orders.setdefault(project_id, []).append(key)
    batch = []
    for pred in Prediction.objects.exclude(probabilities=None).select_related("item").iterator(chunk_size=2000):
        order, probs = orders.get(pred.item.project_id, []), pred.probabilities
        if not order or not isinstance(probs, dict) or any(not isinstance(probs.get(k), (int, float)) for k in order):
            continue
        pred.vector = struct.pack(f">{len(order)}d", *[float(probs[k]) for k in order])
        batch.append(pred)
        if len(batch) >= 2000:
            Prediction.objects.bulk_update(batch, ["vector"])
            batch = []
    if batch:
        Prediction.objects.bulk_update(batch, ["vector"])


class Migration(migrations.Migration):

    dependencies = [
        ("labeling", "0013_quality_result_run_item"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="vector",
            field=models.BinaryField(blank=True, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]

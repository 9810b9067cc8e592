"""Seed the curated tag list with the failure types the interviewed ML engineers reported
(Shankar et al., CSCW 2024). Idempotent: existing tags keep their edited text."""

from django.db import migrations

from bugqueue.seed_tags import SEED_TAGS as TAGS


def seed(apps, schema_editor):
    Tag = apps.get_model("bugqueue", "Tag")
    for position, (slug, name, description) in enumerate(TAGS):
        Tag.objects.get_or_create(slug=slug, defaults={"name": name, "description": description, "position": position})


def unseed(apps, schema_editor):
    Tag = apps.get_model("bugqueue", "Tag")
    Tag.objects.filter(slug__in=[slug for slug, _, _ in TAGS], bugs__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("bugqueue", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]

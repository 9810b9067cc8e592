import pytest

from bugqueue.models import Tag
from bugqueue.seed_tags import SEED_TAGS
from bugqueue.services.tags import tags_seed

pytestmark = pytest.mark.django_db


def test_seed_creates_only_the_missing_tags_and_keeps_edited_text():
    assert tags_seed() == 0  # the conftest (and migration 0002) seeded them all
    assert list(Tag.objects.order_by("position").values_list("slug", flat=True)) == [s for s, _, _ in SEED_TAGS]
    Tag.objects.filter(slug="label_flip").update(name="Flipped labels", description="edited by staff")
    Tag.objects.filter(slug__in=["data_drift", "schema_change"]).delete()
    Tag.objects.create(slug="custom", name="Custom", description="added in the admin", position=99)
    assert tags_seed() == 2
    assert Tag.objects.get(slug="label_flip").name == "Flipped labels"
    drift = Tag.objects.get(slug="data_drift")
    position = [s for s, _, _ in SEED_TAGS].index("data_drift")
    assert (drift.name, drift.position) == ("Data drift", position)
    assert Tag.objects.filter(slug="custom").exists() and Tag.objects.count() == len(SEED_TAGS) + 1
    assert tags_seed() == 0

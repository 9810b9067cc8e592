"""The curated tag list: failure types reported by the ML engineers of the interview study
(Shankar et al., CSCW 2024). Seeded by migration 0002; staff edit and extend it in the admin."""

from django.db import transaction

from bugqueue.models import Tag
from bugqueue.seed_tags import SEED_TAGS


@transaction.atomic
def tags_seed() -> int:
    """Create the seed tags that are missing (existing ones keep their edited text). Returns how many."""
    existing = set(Tag.objects.values_list("slug", flat=True))
    missing = [
        Tag(slug=s, name=n, description=d, position=i) for i, (s, n, d) in enumerate(SEED_TAGS) if s not in existing
    ]
    Tag.objects.bulk_create(missing, ignore_conflicts=True)
    return len(missing)

import pytest

from labeling.models import Item, ItemStatus
from labeling.services import reopen
from labeling.services.reopen import items_reopen_rank_set
from tests.labeling.factories import ItemFactory

pytestmark = pytest.mark.django_db


def ranks(items):
    return dict(Item.objects.filter(pk__in=[i.pk for i in items]).values_list("pk", "reopen_rank"))


def test_each_open_item_gets_its_own_rank_and_others_are_untouched(project):
    a, b, c, other = (ItemFactory(project=project) for _ in range(4))
    changed = items_reopen_rank_set(item_ranks={a.pk: -2.0, b.pk: -1.0, c.pk: -0.75})
    assert changed == 3
    assert ranks([a, b, c, other]) == {a.pk: -2.0, b.pk: -1.0, c.pk: -0.75, other.pk: None}


def test_only_open_items_change(project):
    open_item = ItemFactory(project=project)
    resolved = ItemFactory(project=project, status=ItemStatus.RESOLVED)
    disputed = ItemFactory(project=project, status=ItemStatus.DISPUTED, reopen_rank=0.5)
    changed = items_reopen_rank_set(item_ranks={open_item.pk: -2.0, resolved.pk: -2.0, disputed.pk: -2.0})
    assert changed == 1
    assert ranks([open_item, resolved, disputed]) == {open_item.pk: -2.0, resolved.pk: None, disputed.pk: 0.5}


def test_one_update_per_chunk(project, monkeypatch, django_assert_num_queries):
    items = [ItemFactory(project=project) for _ in range(5)]
    monkeypatch.setattr(reopen, "CHUNK", 2)
    with django_assert_num_queries(3 + 2):  # three UPDATEs, and the savepoint's two statements
        changed = items_reopen_rank_set(item_ranks={i.pk: -float(n) for n, i in enumerate(items)})
    assert changed == 5
    assert ranks(items) == {i.pk: -float(n) for n, i in enumerate(items)}


def test_nothing_to_do_runs_no_update(project, django_assert_num_queries):
    with django_assert_num_queries(2):  # the savepoint only
        assert items_reopen_rank_set(item_ranks={}) == 0

"""Requests for one more annotation (ReopenRequest): how the annotator queue opens them, drops stale
ones, and how the review queue and the counts treat the items that wait for one."""

from collections import Counter

import pytest

from labeling.models import Item, ItemStatus, ReopenRequest, Role
from labeling.selectors.projects import item_list, project_list_with_counts
from labeling.selectors.quality import review_queue_size
from labeling.selectors.queue import annotator_remaining
from labeling.services.queue import claim as claim_service
from labeling.services.queue.claim import assignment_claim_next
from labeling.services.resolution import item_resolve, review_next
from tests.labeling.factories import UserFactory, add_member, annotate, annotators, crowd_project
from tests.labeling.services.queue.test_claim import claims_at_once


def disputed(project, users, n, prefix="d"):
    """n items the first three users labelled three ways (disputed), with touchers as the queue
    leaves them."""
    a, b, c = users[:3]
    items = [
        annotate(
            Item.objects.create(project=project, external_id=f"{prefix}{i}", required_annotations=3),
            [(a, "c0"), (b, "c1"), (c, "c2")],
        )
        for i in range(n)
    ]
    Item.objects.filter(pk__in=[it.pk for it in items]).update(touchers=sorted([a.pk, b.pk, c.pk]))
    for it in items:
        it.refresh_from_db()
    return items


def request(item, rank):
    return ReopenRequest.objects.create(
        item=item,
        project_id=item.project_id,
        rank=rank,
        required=item.required_annotations,
        count=item.annotation_count,
    )


@pytest.mark.django_db
def test_a_claim_opens_the_best_ranked_request_its_annotator_may_take_and_drops_stale_ones():
    project, _ = crowd_project(k=3)
    users = annotators(project, 5)
    a, b, c, d, e = users
    items = disputed(project, users, 4)
    assert {it.status for it in items} == {ItemStatus.DISPUTED}
    stale, best, second, third = items
    for it, rank in zip(items, (0.1, 0.2, 0.3, 0.4)):
        request(it, rank)
    # Waiting items count as open, not as disputed, and are not in the review queue.
    # e has annotated none of them: all four are left for e.
    assert annotator_remaining(project_id=project.pk, annotator=e)["remaining"] == 4
    assert review_queue_size(project=project) == 0
    # A reviewer decides the best-ranked one meanwhile: its request is stale.
    item_resolve(item=stale, reviewer=add_member(project, UserFactory(), Role.REVIEWER), label="c0")
    assert annotator_remaining(project_id=project.pk, annotator=e)["remaining"] == 3

    claim = assignment_claim_next(project=project, annotator=d)
    assert claim.item_id == best.pk
    best.refresh_from_db()
    assert (best.status, best.required_annotations, best.reopen_rank) == (ItemStatus.OPEN, 4, pytest.approx(0.2))
    assert set(ReopenRequest.objects.values_list("item_id", flat=True)) == {second.pk, third.pk}  # stale one dropped
    # One who labelled the items gets nothing from them; the next annotator gets the next one.
    assert assignment_claim_next(project=project, annotator=a) is None
    assert set(ReopenRequest.objects.values_list("item_id", flat=True)) == {second.pk, third.pk}  # nothing opened
    assert assignment_claim_next(project=project, annotator=e).item_id == second.pk  # best's slots are taken


@pytest.mark.django_db
def test_an_annotator_who_labelled_the_head_of_the_requests_reaches_one_beyond_it(monkeypatch):
    monkeypatch.setattr(claim_service, "REQUEST_WINDOW", 3)
    project, _ = crowd_project(k=3)
    users = annotators(project, 6)
    mine = disputed(project, users[:3], 5, prefix="m")  # labelled by users 0..2
    others = disputed(project, users[3:], 1, prefix="o")  # labelled by users 3..5
    for n, it in enumerate(mine):
        request(it, 0.1 + n / 100)
    request(others[0], 0.9)
    claim = assignment_claim_next(project=project, annotator=users[0])
    assert claim.item_id == others[0].pk
    assert ReopenRequest.objects.count() == 5 and Item.objects.filter(status=ItemStatus.OPEN).count() == 1


@pytest.mark.django_db
def test_a_request_made_stale_by_a_new_annotation_is_dropped_and_the_item_reviewed():
    project, _ = crowd_project(k=3)
    users = annotators(project, 5)
    it = disputed(project, users, 1)[0]
    request(it, 0.5)
    assert [x.pk for x in item_list(project=project, status="open")] == [it.pk]
    annotate(it, [(users[3], "c1")], settle_item=False)  # e.g. a late submission of an expired lease
    assert [x.pk for x in item_list(project=project, status="disputed")] == [it.pk]
    assert review_queue_size(project=project) == 1
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    assert review_next(project=project, reviewer=reviewer).item_id == it.pk
    assert assignment_claim_next(project=project, annotator=users[4]) is None
    assert not ReopenRequest.objects.exists()
    it.refresh_from_db()
    assert (it.status, it.required_annotations) == (ItemStatus.DISPUTED, 3)


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_open_each_request_once(postgres_tx):
    """Twelve fresh annotators claim at once while twelve requests wait: each request opens its item
    once (one more slot, never two), and each opened slot goes to exactly one annotator."""
    project, _ = crowd_project(k=3)
    users = annotators(project, 15)
    items = disputed(project, users, 12)
    for n, it in enumerate(items):
        request(it, n / 100)
    got = claims_at_once(project, users[3:])  # the twelve who labelled none of them
    assert all(c is not None for c in got)
    assert Counter(c.item_id for c in got) == {it.pk: 1 for it in items}
    assert set(Item.objects.filter(pk__in=[it.pk for it in items]).values_list("status", "required_annotations")) == {
        (ItemStatus.OPEN, 4)
    }
    assert not ReopenRequest.objects.exists()


def requests_and_a_stale_one():
    project, manager = crowd_project(k=3)
    users = annotators(project, 3)
    items = disputed(project, users, 4)
    request(items[0], 0.1)
    request(items[1], 0.2)
    Item.objects.filter(pk=items[1].pk).update(annotation_count=items[1].annotation_count + 1)  # that request is stale
    return project, manager


@pytest.mark.django_db
def test_project_counts_read_requested_items_as_open():
    project, manager = requests_and_a_stale_one()
    counts = project_list_with_counts(user=manager).get(pk=project.pk)
    assert (counts.n_items, counts.n_open, counts.n_disputed) == (4, 1, 3)
    empty, other = crowd_project(k=3)  # no request at all
    assert project_list_with_counts(user=other).get(pk=empty.pk).n_open == 0


def test_project_counts_group_by_the_project_alone(postgres):
    """The requested items are counted through a join, never by a subquery in the outer GROUP BY:
    there PostgreSQL evaluated it once per joined item row, and the project list (home page and
    project page) never returned with 173k requests waiting."""
    project, manager = requests_and_a_stale_one()
    group_keys = [line for line in project_list_with_counts(user=manager).explain().splitlines() if "Group Key" in line]
    assert group_keys and not any("SubPlan" in line for line in group_keys), group_keys

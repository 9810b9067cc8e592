"""GET /api/projects/{id}/items as the item explorer: each filter, the 400s, ordering, pagination,
blind labeling for annotators; and POST .../items/bulk with its permissions."""

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Annotation, GroundTruth, Item, ItemStatus, Role
from labeling.services.annotations import annotation_submit
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.ingestion import items_ingest
from labeling.services.queue.claim import assignment_claim_next
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _row(ext, text, *, channel="web", label="pos", probs=None, model="v1", when=None):
    row = {"external_id": ext, "payload": {"text": text, "channel": channel}}
    if label:
        row["prediction"] = {
            "model_version": model,
            "label": label,
            "probabilities": probs or {"pos": 0.9, "neg": 0.05, "neu": 0.05},
            "predicted_at": (when or timezone.now() - DAY).isoformat(),
        }
    return row


@pytest.fixture
def world(user):
    """Five items: refund (annotated neg by the annotator then resolved: closed for them), shipping
    (resolved without them), late (annotators disagree), coupon (open, no prediction), email (open)."""
    project = ProjectFactory(creator=user, annotations_per_item=1)
    annotator = add_member(project, role=Role.ANNOTATOR)
    other = add_member(project, role=Role.ANNOTATOR)
    reviewer = add_member(project, role=Role.REVIEWER)
    items_ingest(
        project=project,
        rows=[
            _row(
                "refund", "I want a refund for my broken phone", probs={"pos": 0.2, "neg": 0.7, "neu": 0.1}, label="neg"
            ),
            _row("shipping", "Shipping was fast and the phone works", channel="app"),
            _row("late", "The parcel arrived late, refund please", probs={"pos": 0.4, "neg": 0.35, "neu": 0.25}),
            _row("coupon", "Where do I enter a coupon code?", label=None, channel="email"),
            _row(
                "email",
                "Thanks for the quick answer by email",
                model="v2",
                label="neu",
                probs={"pos": 0.3, "neg": 0.1, "neu": 0.6},
            ),
        ],
    )
    items = {i.external_id: i for i in Item.objects.filter(project=project)}
    claim = assignment_claim_next(project=project, annotator=annotator)
    assert claim.item_id == items["refund"].pk
    annotation_submit(assignment_id=claim.assignment_id, annotator=annotator, label="neg")
    ground_truth_set_many(project_id=project.pk, decisions=[Decision(items["shipping"].pk, "pos", "imported")])
    late = items["late"]
    Annotation.objects.create(project=project, item=late, annotator=other, label="pos")
    Annotation.objects.create(project=project, item=late, annotator=reviewer, label="neg")
    Item.objects.filter(pk=late.pk).update(status=ItemStatus.DISPUTED, annotation_count=2)
    return {
        "project": project,
        "manager": user,
        "annotator": annotator,
        "other": other,
        "reviewer": reviewer,
        "items": items,
    }


def _get(who, world, **params):
    url = f"/api/projects/{world['project'].pk}/items"
    return client_for(who).get(url, params)


def _ext(resp):
    assert resp.status_code == 200, resp.content
    return sorted(r["external_id"] for r in resp.json()["results"])


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"q": "refund"}, ["late", "refund"]),
        ({"q": "REFUND phone"}, ["refund"]),
        ({"status": "resolved"}, ["refund", "shipping"]),
        ({"status": "disputed"}, ["late"]),
        ({"label": "pos"}, ["shipping"]),
        ({"predicted": "neg"}, ["refund"]),
        ({"model_version": "v2"}, ["email"]),
        ({"confidence_min": "0.65"}, ["refund", "shipping"]),
        ({"confidence_max": "0.5"}, ["late"]),
        ({"disagreement": "true"}, ["late"]),
        ({"agreement_below": "0.6"}, ["late"]),
        ({"field.channel": "email"}, ["coupon"]),
        ({"field.channel": "web", "q": "phone"}, ["refund"]),
        ({"external_id": "coupon"}, ["coupon"]),
    ],
)
def test_each_filter(world, params, expected):
    assert _ext(_get(world["manager"], world, **params)) == expected


def test_annotator_and_date_filters(world):
    assert _ext(_get(world["manager"], world, annotator=world["other"].username)) == ["late"]
    now = timezone.now()
    Item.objects.filter(external_id="coupon").update(created_at=now - 10 * DAY)
    before = (now - 5 * DAY).isoformat()
    assert _ext(_get(world["manager"], world, created_before=before)) == ["coupon"]
    assert "coupon" not in _ext(_get(world["manager"], world, created_after=before))
    assert _ext(_get(world["manager"], world, predicted_after=(now - 2 * DAY).isoformat())) == [
        "email",
        "late",
        "refund",
        "shipping",
    ]
    assert _ext(_get(world["manager"], world, updated_before=(now - 20 * DAY).isoformat())) == []


def test_columns(world):
    rows = {r["external_id"]: r for r in _get(world["reviewer"], world).json()["results"]}
    assert rows["shipping"]["label"] == "pos" and rows["shipping"]["predicted"] == "pos"
    assert rows["refund"]["confidence"] == pytest.approx(0.7) and rows["refund"]["model_version"] == "v1"
    assert rows["coupon"]["predicted"] is None and rows["coupon"]["confidence"] is None
    assert all(r["labels_visible"] for r in rows.values())


@pytest.mark.parametrize(
    "params, field",
    [
        ({"colour": "red"}, "colour"),
        ({"status": "nope"}, "status"),
        ({"confidence_min": "high"}, "confidence_min"),
        ({"confidence_max": "1.5"}, "confidence_max"),
        ({"disagreement": "maybe"}, "disagreement"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"ordering": "label"}, "ordering"),
        ({"field.bad name": "x"}, "field.bad name"),
        ({"q": "   "}, "q"),
    ],
)
def test_bad_parameters_are_400(world, params, field):
    resp = _get(world["manager"], world, **params)
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert field in err["fields"]


def test_unknown_parameter_lists_the_known_ones(world):
    err = _get(world["manager"], world, colour="red").json()["error"]
    assert err["code"] == "unknown_parameter"
    for known in ("q", "status", "label", "predicted", "confidence_min", "ordering", "cursor"):
        assert known in err["message"]


@pytest.mark.parametrize("key", ["created", "updated", "priority", "confidence"])
def test_ordering_both_ways_and_cursor_pages(world, key):
    Item.objects.filter(project=world["project"]).update(priority=0)
    for n, ext in enumerate(["email", "coupon", "late", "shipping", "refund"]):
        Item.objects.filter(external_id=ext).update(priority=n, created_at=timezone.now() - (5 - n) * DAY)
    seen = []
    url = f"/api/projects/{world['project'].pk}/items"
    c = client_for(world["manager"])
    resp = c.get(url, {"ordering": f"-{key}", "page_size": 2})
    while True:
        assert resp.status_code == 200, resp.content
        body = resp.json()
        seen += body["results"]
        if not body["next"]:
            break
        resp = c.get(body["next"])
    assert len(seen) == 5 and len({r["id"] for r in seen}) == 5
    if key == "priority":
        assert [r["priority"] for r in seen] == [4, 3, 2, 1, 0]
    if key == "created":
        assert [r["external_id"] for r in seen] == ["refund", "shipping", "late", "coupon", "email"]
    if key == "confidence":
        conf = [r["confidence"] if r["confidence"] is not None else -1 for r in seen]
        assert conf == sorted(conf, reverse=True)
    up = _ext(c.get(url, {"ordering": key}))
    assert len(up) == 5


def test_annotator_sees_no_label_of_items_still_open_to_them(world):
    a = world["annotator"]
    rows = {r["external_id"]: r for r in _get(a, world).json()["results"]}
    assert set(rows) == {"refund", "shipping", "late", "coupon", "email"}  # they may see every item
    assert rows["refund"]["labels_visible"] and rows["refund"]["label"] == "neg"
    for ext in ("shipping", "late", "email"):
        r = rows[ext]
        assert not r["labels_visible"]
        assert r["label"] is None and r["predicted"] is None and r["confidence"] is None and r["model_version"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"label": "pos"},
        {"predicted": "pos"},
        {"model_version": "v2"},
        {"confidence_min": "0.8"},
        {"confidence_max": "0.5"},
        {"disagreement": "true"},
        {"agreement_below": "0.9"},
    ],
)
def test_label_filters_never_match_hidden_items_for_annotators(world, params):
    """A filter on a hidden label would tell the annotator that label; it matches visible items only."""
    found = _ext(_get(world["annotator"], world, **params))
    assert set(found) <= {"refund"}
    assert _ext(_get(world["reviewer"], world, **params))  # reviewers do find items


def test_annotator_filter_on_someone_else_is_blind_too(world):
    assert _ext(_get(world["annotator"], world, annotator=world["other"].username)) == []
    assert _ext(_get(world["annotator"], world, annotator=world["annotator"].username)) == ["refund"]


def test_confidence_ordering_does_not_leak_for_annotators(world):
    rows = _get(world["annotator"], world, ordering="-confidence").json()["results"]
    assert rows[0]["external_id"] == "refund"  # the one visible confidence first; the rest by id
    hidden = [r["id"] for r in rows[1:]]
    assert hidden == sorted(hidden, reverse=True)


# --- bulk ---------------------------------------------------------------------------------


def _bulk(who, world, body):
    return client_for(who).post(f"/api/projects/{world['project'].pk}/items/bulk", body, format="json")


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_bulk_is_for_managers(world, role):
    before = list(Item.objects.values_list("id", "priority", "status"))
    resp = _bulk(world[role], world, {"action": "set_priority", "ids": [world["items"]["coupon"].pk], "value": 9})
    assert resp.status_code == 403
    assert list(Item.objects.values_list("id", "priority", "status")) == before


def test_bulk_outsider_gets_404(world):
    resp = _bulk(UserFactory(), world, {"action": "delete", "ids": [world["items"]["coupon"].pk]})
    assert resp.status_code == 404
    assert Item.objects.filter(pk=world["items"]["coupon"].pk).exists()


def test_bulk_set_priority_by_ids_and_by_filters(world):
    its = world["items"]
    resp = _bulk(
        world["manager"], world, {"action": "set_priority", "ids": [its["coupon"].pk, its["email"].pk], "value": 7}
    )
    assert resp.json() == {"action": "set_priority", "matched": 2, "changed": 2, "skipped": 0}
    assert set(Item.objects.filter(priority=7).values_list("external_id", flat=True)) == {"coupon", "email"}
    resp = _bulk(world["manager"], world, {"action": "set_priority", "filters": {"q": "refund"}, "value": -3})
    assert resp.status_code == 200 and resp.json()["changed"] == 2
    assert set(Item.objects.filter(priority=-3).values_list("external_id", flat=True)) == {"refund", "late"}


def test_bulk_ids_of_another_project_are_ignored(world, user):
    other_project = ProjectFactory(creator=user)
    items_ingest(project=other_project, rows=[_row("x", "elsewhere", label=None)])
    foreign = Item.objects.get(project=other_project)
    resp = _bulk(world["manager"], world, {"action": "set_priority", "ids": [foreign.pk], "value": 5})
    assert resp.json()["matched"] == 0
    foreign.refresh_from_db()
    assert foreign.priority == 0


def test_bulk_send_to_review(world):
    its = world["items"]
    ids = [its[k].pk for k in ("refund", "coupon", "late")]
    resp = _bulk(world["manager"], world, {"action": "send_to_review", "ids": ids})
    assert resp.json() == {"action": "send_to_review", "matched": 3, "changed": 1, "skipped": 2}
    assert Item.objects.get(pk=its["refund"].pk).status == ItemStatus.DISPUTED
    assert GroundTruth.objects.filter(item_id=its["refund"].pk).exists()  # kept until a reviewer decides
    assert Item.objects.get(pk=its["coupon"].pk).status == ItemStatus.OPEN  # nothing to review


def test_bulk_delete_only_unworked_items(world):
    its = world["items"]
    ids = [its[k].pk for k in ("refund", "shipping", "late", "coupon", "email")]
    resp = _bulk(world["manager"], world, {"action": "delete", "ids": ids})
    assert resp.json() == {"action": "delete", "matched": 5, "changed": 2, "skipped": 3}
    assert set(Item.objects.filter(project=world["project"]).values_list("external_id", flat=True)) == {
        "refund",
        "shipping",
        "late",
    }


@pytest.mark.parametrize(
    "body, field",
    [
        ({"action": "explode", "ids": [1]}, "action"),
        ({"action": "set_priority", "ids": [1]}, "value"),
        ({"action": "delete"}, "ids"),
        ({"action": "delete", "ids": [1], "filters": {"q": "x"}}, "ids"),
        ({"action": "delete", "ids": []}, "ids"),
        ({"action": "delete", "filters": {"colour": "red"}}, "filters"),
        ({"action": "delete", "filters": {"status": "nope"}}, "status"),
        ({"action": "add_to_dataset", "ids": [1]}, "action"),
    ],
)
def test_bulk_bad_input_is_400_and_changes_nothing(world, body, field):
    before = list(Item.objects.order_by("id").values_list("id", "priority", "status"))
    resp = _bulk(world["manager"], world, body)
    assert resp.status_code == 400, resp.content
    assert field in resp.json()["error"]["fields"]
    assert list(Item.objects.order_by("id").values_list("id", "priority", "status")) == before


def test_list_query_count_does_not_grow_with_the_page(world, django_assert_max_num_queries):
    items_ingest(project=world["project"], rows=[_row(f"more-{i}", f"more text {i}") for i in range(30)])
    for who in ("manager", "annotator"):
        with django_assert_max_num_queries(6):
            resp = _get(world[who], world, q="more", ordering="-confidence", page_size=50)
        assert resp.status_code == 200 and len(resp.json()["results"]) == 30


def test_an_item_sent_to_review_is_served_and_decided(world):
    from labeling.services.resolution import item_resolve, review_next

    refund = world["items"]["refund"]
    _bulk(world["manager"], world, {"action": "send_to_review", "ids": [refund.pk]})
    served = []
    while (lease := review_next(project=world["project"], reviewer=world["reviewer"])) is not None:
        served.append(lease.item_id)
        item_resolve(item=lease.item, reviewer=world["reviewer"], label="pos")
    assert refund.pk in served
    assert GroundTruth.objects.get(item_id=refund.pk).label == "pos"
    assert Item.objects.get(pk=refund.pk).status == ItemStatus.RESOLVED

"""Changing a project's label set: add, rename, retire (hidden from what is offered, kept on rows), merge."""

import pytest

from common.errors import Conflict, NotFound, ValidationFailed
from labeling.models import Annotation, GroundTruth, LabelChange, LabelClass, LabelOperation, Prediction
from labeling.selectors.labels import offered_labels
from labeling.services.labels import label_add, label_merge, label_restore, label_retire, label_update
from tests.labeling.factories import ItemFactory, PredictionFactory, ProjectFactory, UserFactory, annotate


@pytest.fixture
def setup(db):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    return project, manager


def test_add_appends_with_guideline_revision_and_record(setup):
    project, manager = setup
    label = label_add(project=project, actor=manager, key="mixed", name="Mixed", hotkey="4", guideline="Both.")
    assert label.position > LabelClass.objects.get(project=project, key="neu").position
    assert label.guideline_revisions.get().author == manager
    op = LabelOperation.objects.get(project=project)
    assert (op.kind, op.label_key, op.actor) == ("add", "mixed", manager)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"key": "Bad Key", "name": "x"}, "key"),
        ({"key": "ok", "name": ""}, "name"),
        ({"key": "ok", "name": "x", "hotkey": "s"}, "hotkey"),
    ],
)
def test_add_rejects_bad_values_naming_the_field(setup, kw, field):
    project, manager = setup
    with pytest.raises(ValidationFailed) as exc:
        label_add(project=project, actor=manager, **kw)
    assert field in exc.value.fields
    assert not LabelClass.objects.filter(project=project, key=kw["key"]).exists()


def test_add_conflicts_on_taken_key_or_hotkey(setup):
    project, manager = setup
    with pytest.raises(Conflict):
        label_add(project=project, actor=manager, key="pos", name="Again")
    with pytest.raises(Conflict):
        label_add(project=project, actor=manager, key="other", name="Other", hotkey="1")


def test_rename_keeps_key_and_records_from_to(setup):
    project, manager = setup
    label = label_update(project=project, actor=manager, key="pos", name="Positive tone")
    assert (label.key, label.name) == ("pos", "Positive tone")
    op = LabelOperation.objects.get(project=project, kind="rename")
    assert op.details == {"from": "Positive", "to": "Positive tone"}


def test_guideline_edit_appends_revision(setup):
    project, manager = setup
    label_update(project=project, actor=manager, key="pos", guideline="New text", note="clarified")
    revs = list(LabelClass.objects.get(project=project, key="pos").guideline_revisions.order_by("id"))
    assert revs[-1].text == "New text" and revs[-1].note == "clarified" and revs[-1].author == manager


def test_retire_hides_from_offer_keeps_rows_and_restore_brings_back(setup):
    project, manager = setup
    item = ItemFactory(project=project)
    annotate(item, [(UserFactory(), "neu")], settle_item=False)
    label_retire(project=project, actor=manager, key="neu")
    assert [lc.key for lc in offered_labels(project_id=project.pk)] == ["pos", "neg"]
    assert Annotation.objects.get(item=item).label == "neu"
    with pytest.raises(Conflict):
        label_retire(project=project, actor=manager, key="neu")
    with pytest.raises(Conflict):  # at least two stay in use
        label_retire(project=project, actor=manager, key="neg")
    label_restore(project=project, actor=manager, key="neu")
    assert [lc.key for lc in offered_labels(project_id=project.pk)] == ["pos", "neg", "neu"]
    assert list(LabelOperation.objects.filter(project=project).values_list("kind", flat=True)) == [
        "retire",
        "restore",
    ]


def test_merge_moves_every_row_retires_source_and_records(setup):
    project, manager = setup
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    item = ItemFactory(project=project)
    annotate(item, [(a, "neu"), (b, "neu"), (c, "neu")])  # unanimous: ground truth + history
    PredictionFactory(item=item, label="neu")
    other = ItemFactory(project=project)
    annotate(other, [(a, "pos")], settle_item=False)
    assert GroundTruth.objects.get(item=item).label == "neu"

    moved = label_merge(project=project, actor=manager, key="neu", into="neg")

    assert set(Annotation.objects.filter(item=item).values_list("label", flat=True)) == {"neg"}
    assert GroundTruth.objects.get(item=item).label == "neg"
    assert Prediction.objects.get(item=item).label == "neg"
    assert not LabelChange.objects.filter(project=project, label="neu").exists()
    assert Annotation.objects.get(item=other).label == "pos"
    assert moved["annotations"] == 3 and moved["ground_truth"] == 1 and moved["predictions"] == 1
    assert LabelClass.objects.get(project=project, key="neu").retired_at is not None
    op = LabelOperation.objects.get(project=project, kind="merge")
    assert (op.label_key, op.into_key, op.actor, op.details["annotations"]) == ("neu", "neg", manager, 3)


def test_merge_rejects_self_unknown_and_retired_target(setup):
    project, manager = setup
    with pytest.raises(ValidationFailed):
        label_merge(project=project, actor=manager, key="pos", into="pos")
    with pytest.raises(ValidationFailed):
        label_merge(project=project, actor=manager, key="pos", into="nope")
    with pytest.raises(NotFound):
        label_merge(project=project, actor=manager, key="nope", into="pos")
    label_retire(project=project, actor=manager, key="neu")
    with pytest.raises(Conflict):
        label_merge(project=project, actor=manager, key="pos", into="neu")
    assert not LabelOperation.objects.filter(kind="merge").exists()


def test_retired_label_is_refused_on_submit_and_not_on_the_label_page(db):
    from labeling.services.annotations import annotation_submit
    from labeling.services.queue.claim import assignment_claim_next
    from labeling.views.queue import label_keys
    from tests.labeling.factories import annotators, queue_project

    project, _ = queue_project(items=1, overlap=1)
    manager = project.created_by
    (annotator,) = annotators(project, 1)
    label_retire(project=project, actor=manager, key="neu")
    claim = assignment_claim_next(project=project, annotator=annotator)
    with pytest.raises(ValidationFailed):
        annotation_submit(assignment_id=claim.assignment_id, annotator=annotator, label="neu")
    assert "neu" not in [lab["key"] for lab in label_keys(offered_labels(project_id=project.pk))]
    annotation_submit(assignment_id=claim.assignment_id, annotator=annotator, label="pos")

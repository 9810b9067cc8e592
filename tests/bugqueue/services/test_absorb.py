"""A failure whose expected label disagrees with the ground truth goes to review, not into a dataset;
items that become ready join in batched absorb passes (one version per dataset per pass)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bugqueue import receivers, tasks
from bugqueue.models import (
    BugProjectSettings,
    Dataset,
    DatasetMember,
    DatasetPending,
    DatasetVersion,
    FailureExample,
)
from bugqueue.services.absorb import datasets_absorb_due_projects, datasets_absorb_pass, datasets_absorb_schedule
from bugqueue.services.datasets import Addition, bug_datasets_flow_run, bug_datasets_flow_start, dataset_version_create
from labeling.models import GroundTruth, GroundTruthObservation, Item, ItemStatus, LabelChange, Role
from labeling.services.ground_truth import ground_truth_set
from labeling.services.projects import LabelSpec
from labeling.services.resolution import item_resolve, review_next
from tests.bugqueue.factories import failing_bug, label, make_items
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db

SUPPORT_LABELS = [
    LabelSpec("billing", "Billing", "Invoices, charges, refunds.", "1"),
    LabelSpec("account", "Account", "Login, profile, access.", "2"),
    LabelSpec("shipping", "Shipping", "Parcels and couriers.", "3"),
]


@pytest.fixture
def support(user):
    return ProjectFactory(creator=user, labels=list(SUPPORT_LABELS))


@pytest.fixture
def sent(monkeypatch):
    """Task messages the datasets' receiver sends (not run)."""
    out = []

    def record(task, *args, **options):
        if task.name.startswith("bugqueue.datasets_absorb"):
            out.append((task.name, args, options))

    monkeypatch.setattr(receivers, "_send", record)
    return out


def _resolve_into(bug, user, datasets, mine_similar=0):
    flow = bug_datasets_flow_start(bug=bug, actor=user, dataset_ids=[d.pk for d in datasets], mine_similar=mine_similar)
    return bug_datasets_flow_run(flow_id=flow.pk)


def _billing_to_account_bug(project):
    """Bug 21: the model predicted billing, the failure says account, the item's imported truth is billing."""
    (item,) = make_items(project, 1, prefix="t21-")
    label([item], "billing")
    bug = failing_bug(project, title="billing -> account", failures=[(item, "account")])
    FailureExample.objects.filter(bug=bug).update(predicted_label="billing")
    return bug, item


def _pass_when_due(project):
    """Run the project's pass as the worker would once its due time has come."""
    due = BugProjectSettings.objects.get(pk=project.pk).absorb_due_at
    return datasets_absorb_pass(project_id=project.pk, now=due + timedelta(seconds=1))


@pytest.mark.parametrize("decided", ["account", "billing"])
def test_disputed_failure_waits_for_a_reviewer_then_joins_with_the_decided_label(
    user, support, sent, decided, django_capture_on_commit_callbacks
):
    ds = Dataset.objects.create(project=support, name="gate")
    bug, item = _billing_to_account_bug(support)
    flow = _resolve_into(bug, user, [ds])
    _resolve_into(bug, user, [ds])  # resolved twice: still one conflict, one waiting row

    assert (flow.status, flow.added, flow.conflicts, flow.pending, flow.versions) == ("done", 0, 1, 0, [])
    assert not DatasetMember.objects.filter(item=item).exists()  # neither label entered
    ds.refresh_from_db()
    assert ds.latest_version == 0
    row = DatasetPending.objects.get(dataset=ds, item=item)
    assert (row.reason, row.expected_label, row.bug_id, row.added_in) == ("conflict", "account", bug.pk, None)
    item.refresh_from_db()
    assert item.status == ItemStatus.CONFLICT
    assert GroundTruth.objects.get(item=item).label == "billing"  # the truth is not overwritten
    obs = GroundTruthObservation.objects.get(item=item)
    assert (obs.label, obs.source, obs.outcome) == ("account", f"bug:{bug.pk}", "conflict")
    assert not LabelChange.objects.filter(item=item, label="account").exists()
    # A pass while the conflict is open absorbs nothing.
    assert datasets_absorb_pass(project_id=support.pk) == []

    reviewer = add_member(support, UserFactory(), Role.REVIEWER)
    shown = client_for(reviewer).post(f"/api/projects/{support.pk}/review/next")
    assert shown.status_code == 200, shown.content
    body = shown.json()
    assert body["item"]["id"] == item.pk and body["item"]["status"] == "conflict"
    assert body["conflict"]["ground_truth"]["label"] == "billing"  # the reviewer sees both labels
    assert [(c["label"], c["source"]) for c in body["conflict"]["claims"]] == [("account", f"bug:{bug.pk}")]
    lease = review_next(project=support, reviewer=reviewer)  # the same lease
    assert lease is not None and lease.item_id == item.pk
    with django_capture_on_commit_callbacks(execute=True):
        item_resolve(item=lease.item, reviewer=reviewer, label=decided, note="read the ticket")
    assert sent == [("bugqueue.datasets_absorb_pass", (support.pk,), {"countdown": 600})]
    assert not DatasetMember.objects.filter(item=item).exists()  # waits for the pass

    (version,) = _pass_when_due(support)
    assert (version.number, version.reason, version.bug_id, version.added) == (1, "bug_followup", bug.pk, 1)
    member = DatasetMember.objects.get(dataset=ds, item=item)
    assert (member.label, member.bug_id, member.added_in) == (decided, bug.pk, 1)
    row.refresh_from_db()
    assert row.added_in == 1
    assert BugProjectSettings.objects.get(pk=support.pk).absorb_due_at is None
    assert datasets_absorb_pass(project_id=support.pk) == []  # nothing twice


def test_conflict_ended_by_an_import_not_a_person_goes_back_to_review(user, support):
    from labeling.services.feedback import ground_truth_import

    ds = Dataset.objects.create(project=support, name="gate")
    bug, item = _billing_to_account_bug(support)
    _resolve_into(bug, user, [ds])
    later = (timezone.now() + timedelta(seconds=1)).isoformat()
    ground_truth_import(
        project=support, rows=[{"external_id": item.external_id, "label": "shipping", "observed_at": later}]
    )
    item.refresh_from_db()
    assert item.status == ItemStatus.RESOLVED and GroundTruth.objects.get(item=item).label == "shipping"
    assert datasets_absorb_pass(project_id=support.pk) == []  # shipping never entered unreviewed
    item.refresh_from_db()
    assert item.status == ItemStatus.CONFLICT and not DatasetMember.objects.filter(item=item).exists()

    reviewer = add_member(support, UserFactory(), Role.REVIEWER)
    item_resolve(item=item, reviewer=reviewer, label="shipping")
    (version,) = datasets_absorb_pass(project_id=support.pk)
    assert DatasetMember.objects.get(dataset=ds, item=item).label == "shipping" and version.added == 1


def test_agreeing_or_one_sided_failures_enter_at_once(user, support):
    ds = Dataset.objects.create(project=support, name="core")
    agree, only_truth, only_expected = make_items(support, 3, prefix="a")
    label([agree], "account")
    label([only_truth], "shipping")
    bug = failing_bug(support, failures=[(agree, "account"), (only_truth, None), (only_expected, "billing")])
    flow = _resolve_into(bug, user, [ds])
    assert (flow.added, flow.conflicts) == (3, 0)
    members = dict(DatasetMember.objects.filter(dataset=ds).values_list("item_id", "label"))
    assert members == {agree.pk: "account", only_truth.pk: "shipping", only_expected.pk: "billing"}
    assert set(DatasetMember.objects.filter(dataset=ds).values_list("bug_id", flat=True)) == {bug.pk}
    assert not Item.objects.filter(project=support, status=ItemStatus.CONFLICT).exists()


def test_disputed_failure_with_no_target_dataset_changes_nothing(user, support):
    bug, item = _billing_to_account_bug(support)
    # Nothing to hand to a dataset: no flow is recorded at all (no "done, added 0" step).
    assert bug_datasets_flow_start(bug=bug, actor=user, dataset_ids=[], mine_similar=0) is None
    item.refresh_from_db()
    assert item.status == ItemStatus.RESOLVED and not GroundTruthObservation.objects.filter(item=item).exists()


def test_member_in_conflict_is_not_relabeled_until_decided(user, support):
    ds = Dataset.objects.create(project=support, name="core")
    disputed, other, later = make_items(support, 3, prefix="r")
    label([disputed, other, later], "billing")
    dataset_version_create(dataset_id=ds.pk, add=[Addition(disputed.pk, "billing"), Addition(other.pk, "billing")])
    # The truth changes while the item is in conflict (it waits for a reviewer).
    ground_truth_set(item=disputed, label="account", method="imported", status=ItemStatus.CONFLICT)
    v2 = dataset_version_create(dataset_id=ds.pk, add=[Addition(later.pk, "billing")])
    assert (v2.added, v2.relabeled) == (1, 0)
    assert DatasetMember.objects.get(dataset=ds, item=disputed, removed_in__isnull=True).label == "billing"

    reviewer = add_member(support, UserFactory(), Role.REVIEWER)
    item_resolve(item=disputed, reviewer=reviewer, label="account")
    v3 = dataset_version_create(dataset_id=ds.pk, add=[Addition(later.pk, "billing")])
    assert v3.relabeled == 1
    assert DatasetMember.objects.get(dataset=ds, item=disputed, removed_in__isnull=True).label == "account"


@pytest.fixture
def lookalikes(user, project, settings, tmp_path):
    """A bug resolved into two datasets with 9 mined look-alikes waiting for labels."""
    from labeling.services import similarity

    settings.MEDIA_ROOT = tmp_path
    similarity._load_segment.cache_clear()
    first = Dataset.objects.create(project=project, name="first")
    second = Dataset.objects.create(project=project, name="second")
    refunds = make_items(project, 12, prefix="r", text="refund my double charge invoice")
    make_items(project, 12, prefix="s", text="parcel lost tracking courier")
    similarity.similarity_index_update(project_id=project.id)
    bug = failing_bug(project, failures=[(refunds[0], "pos")])
    flow = _resolve_into(bug, user, [first, second], mine_similar=9)
    assert (flow.added, flow.mined, flow.pending) == (2, 9, 9)  # the failure, in each dataset
    waiting = list(Item.objects.filter(dataset_pending__dataset=first).order_by("id"))
    assert len(waiting) == 9
    return bug, first, second, waiting


def test_lookalikes_labeled_one_by_one_make_one_version_per_dataset(
    project, lookalikes, sent, django_capture_on_commit_callbacks
):
    bug, first, second, waiting = lookalikes
    before = timezone.now()
    for item in waiting:
        with django_capture_on_commit_callbacks(execute=True):
            ground_truth_set(item=item, label="neg", method="adjudicated")
    assert sent == [("bugqueue.datasets_absorb_pass", (project.pk,), {"countdown": 600})]  # one pass, not nine
    due = BugProjectSettings.objects.get(pk=project.pk).absorb_due_at
    assert before + timedelta(seconds=600) <= due <= timezone.now() + timedelta(seconds=600)

    assert tasks.datasets_absorb_pass_task(project.pk) is None  # too early: the pass is due later
    assert not DatasetVersion.objects.filter(number=2).exists()

    BugProjectSettings.objects.filter(pk=project.pk).update(absorb_due_at=timezone.now() - timedelta(seconds=1))
    assert tasks.datasets_absorb_pass_task(project.pk) == 2
    for ds in (first, second):
        ds.refresh_from_db()
        assert ds.latest_version == 2
        v2 = DatasetVersion.objects.get(dataset=ds, number=2)
        assert (v2.reason, v2.bug_id, v2.added, v2.size) == ("bug_followup", bug.pk, 9, 10)
        assert f"#{bug.pk}" in v2.note
        assert DatasetMember.objects.filter(dataset=ds, added_in=2, label="neg", bug=bug).count() == 9
    assert BugProjectSettings.objects.get(pk=project.pk).absorb_due_at is None
    assert tasks.datasets_absorb_pass_task(project.pk) == 0  # idempotent

    # A label after the pass schedules the next one.
    late = make_items(project, 1, prefix="late")[0]
    DatasetPending.objects.create(dataset=first, item=late, bug=bug, reason="similar")
    with django_capture_on_commit_callbacks(execute=True):
        ground_truth_set(item=late, label="pos", method="adjudicated")
    assert len(sent) == 2 and BugProjectSettings.objects.get(pk=project.pk).absorb_due_at is not None


def test_batch_of_zero_seconds_absorbs_at_once(project, lookalikes, sent, django_capture_on_commit_callbacks):
    from bugqueue.services.bug_settings import bug_settings_update

    bug_settings_update(project=project, actor=project.created_by, dataset_batch_seconds=0)
    _, first, _, waiting = lookalikes
    with django_capture_on_commit_callbacks(execute=True):
        ground_truth_set(item=waiting[0], label="neg", method="adjudicated")
    assert sent == [("bugqueue.datasets_absorb_pass", (project.pk,), {})]
    assert BugProjectSettings.objects.get(pk=project.pk).absorb_due_at <= timezone.now()
    assert len(datasets_absorb_pass(project_id=project.pk)) == 2


def test_in_process_celery_runs_the_pass_when_the_label_commits(
    project, lookalikes, eager_celery, django_capture_on_commit_callbacks
):
    _, first, second, waiting = lookalikes
    with django_capture_on_commit_callbacks(execute=True):
        ground_truth_set(item=waiting[0], label="neg", method="adjudicated")
    assert DatasetMember.objects.filter(item=waiting[0]).count() == 2
    assert BugProjectSettings.objects.get(pk=project.pk).absorb_due_at is None


def test_one_pass_over_two_bugs_cites_both_and_members_keep_their_bug(user, project):
    ds = Dataset.objects.create(project=project, name="core")
    a, b = make_items(project, 2, prefix="two")
    bug_a = failing_bug(project, title="a", failures=[(a, None)])
    bug_b = failing_bug(project, title="b", failures=[(b, None)])
    _resolve_into(bug_a, user, [ds])
    _resolve_into(bug_b, user, [ds])
    label([a, b], "pos")
    (version,) = datasets_absorb_pass(project_id=project.pk)
    assert (version.bug_id, version.added) == (None, 2)
    assert f"#{bug_a.pk}" in version.note and f"#{bug_b.pk}" in version.note
    assert dict(DatasetMember.objects.filter(dataset=ds).values_list("item_id", "bug_id")) == {
        a.pk: bug_a.pk,
        b.pk: bug_b.pk,
    }


def test_schedule_keeps_a_pass_due_later_and_replaces_one_overdue(project):
    now = timezone.now()
    assert datasets_absorb_schedule(project_id=project.pk, now=now) == 600
    assert datasets_absorb_schedule(project_id=project.pk, now=now + timedelta(seconds=599)) is None
    assert BugProjectSettings.objects.get(pk=project.pk).absorb_due_at == now + timedelta(seconds=600)
    later = now + timedelta(seconds=700)  # the pass's message was lost: a new label schedules again
    assert datasets_absorb_schedule(project_id=project.pk, now=later) == 600
    assert BugProjectSettings.objects.get(pk=project.pk).absorb_due_at == later + timedelta(seconds=600)


def test_sweep_runs_due_passes_and_lost_ones_but_not_early_ones(user, eager_celery):
    now = timezone.now()
    worlds = {}
    for name, due in (("due", now - timedelta(seconds=5)), ("lost", None), ("later", now + timedelta(hours=1))):
        project = ProjectFactory(creator=user)
        ds = Dataset.objects.create(project=project, name=name)
        (item,) = make_items(project, 1, prefix=f"{name}-")
        bug = failing_bug(project, title=name, failures=[(item, None)])
        _resolve_into(bug, user, [ds])
        label([item], "pos")
        BugProjectSettings.objects.update_or_create(project=project, defaults={"absorb_due_at": due})
        worlds[name] = (project, ds)
    quiet = ProjectFactory(creator=user)
    BugProjectSettings.objects.update_or_create(project=quiet, defaults={"absorb_due_at": now - timedelta(seconds=5)})

    expected = sorted([worlds["due"][0].pk, worlds["lost"][0].pk, quiet.pk])
    assert datasets_absorb_due_projects(now=now) == expected
    assert tasks.datasets_absorb_sweep_task() == 3
    for name, (_, ds) in worlds.items():
        ds.refresh_from_db()
        assert ds.latest_version == (0 if name == "later" else 1), name
    assert BugProjectSettings.objects.get(pk=quiet.pk).absorb_due_at is None
    assert BugProjectSettings.objects.get(pk=worlds["later"][0].pk).absorb_due_at is not None


@pytest.mark.django_db(transaction=True)
def test_two_passes_at_once_write_one_version(postgres_tx):
    user = UserFactory()
    project = ProjectFactory(creator=user)
    datasets = [Dataset.objects.create(project=project, name=f"d{k}") for k in range(2)]
    items = make_items(project, 30, prefix="c")
    bug = failing_bug(project, failures=[(it, None) for it in items])
    _resolve_into(bug, user, datasets)
    label(items, "pos")
    BugProjectSettings.objects.filter(pk=project.pk).update(absorb_due_at=None)  # both run now
    barrier, errors, results = threading.Barrier(2), [], []

    def run():
        try:
            barrier.wait(timeout=30)
            results.append(datasets_absorb_pass(project_id=project.pk))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert sum(len(r) for r in results) == 2  # one version per dataset, whichever pass wrote it
    for ds in datasets:
        assert list(DatasetVersion.objects.filter(dataset=ds).values_list("number", "added")) == [(1, 30)]
    assert not DatasetPending.objects.filter(added_in__isnull=True).exists()


def test_messages_of_the_earlier_per_item_task_schedule_the_pass(project, lookalikes, monkeypatch):
    from labeling.services import work

    sent = []
    monkeypatch.setattr(work, "enqueue", lambda task, *args, **options: sent.append((task.name, args, options)))
    _, _, _, waiting = lookalikes
    assert tasks.datasets_absorb_labeled_task([waiting[0].pk, waiting[1].pk]) == 1
    assert sent == [("bugqueue.datasets_absorb_pass", (project.pk,), {"countdown": 600})]
    assert BugProjectSettings.objects.get(pk=project.pk).absorb_due_at is not None

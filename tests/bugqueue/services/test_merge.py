"""Merging bugs and undoing it: what moves, the history on both sides, where later reports land,
the refusals (nothing changes), and concurrent reports after a merge."""

import pytest

from bugqueue.models import Bug, BugEvent, BugMerge, BugOccurrence, FailureExample
from bugqueue.services.merge import bug_unmerge, bugs_merge
from bugqueue.services.occurrences import occurrences_reconcile
from common.errors import Conflict, ValidationFailed
from tests.bugqueue.factories import ingest_items, make_bug, report, resolve, run_threads
from tests.labeling.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def failing(project, title, items, tags=()):
    return report(
        project,
        title=title,
        kind="failed_prediction",
        tags=list(tags),
        failures=[{"external_id": it.external_id, "predicted_label": "pos", "model_version": "v1"} for it in items],
    ).bug


def snapshot(*bugs):
    return {
        b.pk: (
            sorted(FailureExample.objects.filter(bug_id=b.pk).values_list("pk", flat=True)),
            sorted(BugOccurrence.objects.filter(bug_id=b.pk).values_list("pk", "count")),
            sorted(Bug.objects.get(pk=b.pk).tags.values_list("slug", flat=True)),
            Bug.objects.filter(pk=b.pk).values_list("status", "occurrences", "duplicate_of_id", "first_seen")[0],
        )
        for b in bugs
    }


def test_merge_moves_failures_occurrences_and_tags_and_unmerge_puts_them_back(project, user):
    items = ingest_items(project, 5)
    target = failing(project, "Refunds routed to shipping", items[:2], tags=["label_flip"])
    source = failing(project, "Refund tickets land in shipping", items[2:5], tags=["data_drift"])
    report(project, title="Refund tickets land in shipping", kind="failed_prediction")  # one more occurrence
    before = snapshot(target, source)

    result = bugs_merge(target=target, bugs=[source.pk], actor=user)

    assert result.merged == [source.pk] and result.target.occurrences == 2 + 4
    assert FailureExample.objects.filter(bug=target).count() == 5 and not FailureExample.objects.filter(bug=source)
    assert BugOccurrence.objects.filter(bug=source).count() == 0
    source.refresh_from_db()
    assert (source.status, source.duplicate_of_id, source.occurrences) == ("duplicate", target.pk, 0)
    assert sorted(result.target.tags.values_list("slug", flat=True)) == ["data_drift", "label_flip"]
    assert BugEvent.objects.filter(bug=target, field="merged", to_value=f"#{source.pk}").exists()
    assert set(BugEvent.objects.filter(bug=source).values_list("field", "to_value")) >= {
        ("status", "duplicate"),
        ("duplicate_of", str(target.pk)),
    }
    assert occurrences_reconcile(fix=False) == []  # counters agree with the rows

    # A later report of the merged bug's title lands in the target, even with punctuation.
    later = report(project, title="Refund tickets land in shipping!", kind="failed_prediction")
    assert later.bug.pk == target.pk and not later.created

    unmerged = bug_unmerge(bug=source, actor=user)
    assert unmerged.status == "new" and unmerged.duplicate_of_id is None
    after = snapshot(target, source)
    assert after[source.pk] == before[source.pk]
    # The target keeps what was filed into it after the merge (one more occurrence), nothing else.
    t_fail, t_rows, t_tags, (t_status, t_occ, _, t_first) = after[target.pk]
    assert t_fail == before[target.pk][0] and t_tags == ["label_flip"] and t_first == before[target.pk][3][3]
    assert t_occ == before[target.pk][3][1] + 1 and len(t_rows) == len(before[target.pk][1]) + 1
    assert BugMerge.objects.get(source=source).unmerged_by == user
    assert BugEvent.objects.filter(bug=target, field="unmerged").exists()
    assert occurrences_reconcile(fix=False) == []
    assert report(project, title="Refund tickets land in shipping", kind="failed_prediction").bug.pk == source.pk


def test_nested_merges_unmerge_exactly(project, user):
    items = ingest_items(project, 3)
    a, b, c = (failing(project, f"Bug {name} only", [it]) for name, it in zip("abc", items, strict=True))
    bugs_merge(target=b, bugs=[a.pk], actor=user)
    bugs_merge(target=c, bugs=[b.pk], actor=user)
    assert FailureExample.objects.filter(bug=c).count() == 3
    with pytest.raises(Conflict) as exc:
        bug_unmerge(bug=a, actor=user)  # b was merged since
    assert exc.value.code == "target_merged"
    bug_unmerge(bug=b, actor=user)
    assert sorted(FailureExample.objects.filter(bug=b).values_list("item_id", flat=True)) == [items[0].pk, items[1].pk]
    bug_unmerge(bug=a, actor=user)
    for bug, item in zip((a, b, c), items, strict=True):
        assert list(FailureExample.objects.filter(bug=bug).values_list("item_id", flat=True)) == [item.pk]
        assert Bug.objects.get(pk=bug.pk).occurrences == 1
    assert not FailureExample.objects.filter(origin_bug__isnull=False).exists()


def test_a_resolved_bug_merges_and_gets_its_resolution_back(project, user):
    target = make_bug(project, title="Open one")
    source = resolve(make_bug(project, title="Closed one"), note="done")
    bugs_merge(target=target, bugs=[source.pk], actor=user)
    back = bug_unmerge(bug=source, actor=user)
    assert (back.status, back.resolution, back.resolution_note) == ("resolved", "fixed", "done")
    assert back.resolved_at == source.resolved_at


@pytest.mark.parametrize(
    "case, error, code",
    [
        ("self", Conflict, "merge_into_self"),
        ("closed", Conflict, "merge_into_closed"),
        ("duplicate", Conflict, "already_duplicate"),
        ("other_project", ValidationFailed, "invalid"),
        ("unknown", ValidationFailed, "invalid"),
    ],
)
def test_refused_merges_change_nothing(project, user, case, error, code):
    target = make_bug(project, title="Target")
    source = make_bug(project, title="Source")
    ids = [source.pk]
    if case == "self":
        ids = [source.pk, target.pk]
    elif case == "closed":
        resolve(target)
    elif case == "duplicate":
        bugs_merge(target=make_bug(project, title="Elsewhere"), bugs=[source.pk], actor=user)
    elif case == "other_project":
        ids = [source.pk, make_bug(ProjectFactory(), title="Far").pk]
    elif case == "unknown":
        ids = [source.pk, 99999999]
    before = snapshot(target, source)
    merges = BugMerge.objects.count()
    with pytest.raises(error) as exc:
        bugs_merge(target=target, bugs=ids, actor=user)
    assert exc.value.code == code
    assert snapshot(target, source) == before and BugMerge.objects.count() == merges


def test_unmerge_of_a_bug_never_merged_is_refused(project, user):
    with pytest.raises(Conflict) as exc:
        bug_unmerge(bug=make_bug(project), actor=user)
    assert exc.value.code == "not_merged"


def test_concurrent_reports_after_a_merge_make_no_new_bug(postgres_tx):
    project = ProjectFactory()
    user = project.created_by
    target = make_bug(project, title="Refunds routed to shipping")
    source = make_bug(project, title="Refund tickets land in shipping")
    bugs_merge(target=target, bugs=[source.pk], actor=user)
    titles = ["Refund tickets land in shipping.", "refund tickets land in shipping!"] * 4

    run_threads(len(titles), lambda i: report(project, title=titles[i]))

    assert Bug.objects.filter(project=project).count() == 2
    assert Bug.objects.get(pk=target.pk).occurrences == 2 + len(titles)
    assert Bug.objects.get(pk=source.pk).status == "duplicate"


def test_a_merged_bug_is_no_longer_snoozed(project, user):
    from bugqueue.services.snooze import bugs_snooze, snooze_spec

    items = ingest_items(project, 2)
    target = failing(project, "Refunds routed to shipping", items[:1])
    source = failing(project, "Refund tickets land in shipping", items[1:])
    bugs_snooze(bugs=[Bug.objects.get(pk=source.pk)], actor=user, spec=snooze_spec(occurrences=10))
    assert Bug.objects.get(pk=source.pk).snoozed

    bugs_merge(target=target, bugs=[source.pk], actor=user)

    source.refresh_from_db()
    assert not source.snoozed and source.snooze_until_occurrences is None
    assert BugEvent.objects.filter(bug=source, field="snoozed", to_value="false").exists()

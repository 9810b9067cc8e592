"""Curating a validation dataset by hand (datasets.dataset_create makes it): edit its name,
description, gate flag, minimum accuracy and tags, and change its items in one new version, by
external id, by a bug's failures or by a text search.

A request either changes what it asks for or nothing: items that cannot join (no ground truth, or a
failure whose expected label disagrees with the ground truth, which only a reviewer may settle) are
refused and listed, unless the caller asks to skip them (`skip_refused`) and add the rest."""

import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Q

from bugqueue.models import Bug, Dataset, DatasetVersion, VersionReason
from bugqueue.selectors.datasets import item_search, live_members
from bugqueue.services.datasets import Addition, dataset_version_create, tags_by_slug
from common.errors import Conflict, ValidationFailed
from labeling.models import GroundTruth, Item, ItemStatus

log = logging.getLogger(__name__)

UNSET = object()
MAX_SEARCH_ADD = 10_000
MAX_LISTED = 1000


@dataclass
class Curation:
    """The version written (None when nothing changed) and the items refused, by why."""

    version: DatasetVersion | None
    without_ground_truth: list[str] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)  # {external_id, expected, ground_truth}

    @property
    def refused(self) -> dict:
        return {"without_ground_truth": self.without_ground_truth, "conflicts": self.conflicts}


def dataset_update(
    *, dataset: Dataset, actor, name=UNSET, description=UNSET, gate=UNSET, min_accuracy=UNSET, tags=UNSET
) -> Dataset:
    """Change the given fields (the others stay). Everything is checked before anything is written:
    400 for bad values, 409 when another dataset of the project has the name."""
    fields = {}
    if name is not UNSET:
        name = (name or "").strip()
        if not name:
            raise ValidationFailed("name may not be blank.", fields={"name": ["This field may not be blank."]})
        if len(name) > 200:
            raise ValidationFailed("name is at most 200 characters.", fields={"name": ["At most 200 characters."]})
        fields["name"] = name
    if description is not UNSET:
        fields["description"] = description or ""
    if gate is not UNSET:
        fields["gate"] = bool(gate)
    if min_accuracy is not UNSET:
        if min_accuracy is not None and not (0 <= min_accuracy <= 1):
            raise ValidationFailed(
                "min_accuracy must be from 0 to 1.", fields={"min_accuracy": ["Must be from 0 to 1."]}
            )
        fields["min_accuracy"] = min_accuracy
    tag_objs = tags_by_slug(tags) if tags is not UNSET else None
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if "name" in fields and fields["name"] != locked.name:
            taken = Dataset.objects.filter(project_id=locked.project_id, name=fields["name"]).exclude(pk=locked.pk)
            if taken.exists():
                raise _name_taken(fields["name"])
        for key, value in fields.items():
            setattr(locked, key, value)
        if fields:
            try:
                with transaction.atomic():
                    locked.save(update_fields=list(fields))
            except IntegrityError:
                raise _name_taken(fields.get("name", locked.name))
        if tag_objs is not None:
            locked.tags.set(tag_objs)
    log.info("dataset %s edited by %s: %s", locked.pk, getattr(actor, "pk", None), sorted(fields))
    return locked


def _name_taken(name):
    return Conflict(
        f"This project already has a dataset named {name!r}.",
        code="dataset_exists",
        fields={"name": ["Already used in this project."]},
    )


def _project_bug(dataset, bug_id, key) -> Bug:
    bug = Bug.objects.filter(pk=bug_id, project_id=dataset.project_id).first()
    if bug is None:
        raise ValidationFailed(f"Bug {bug_id} is not a bug of this project.", fields={key: ["Unknown bug."]})
    return bug


def _bug_additions(dataset, bug) -> tuple[list[Addition], list[str], list[dict], dict]:
    """The bug's failures as additions, labelled as the bug flow does: the item's ground truth, else
    the failure's expected label. A failure whose expected label disagrees with the ground truth is
    a conflict (refused: a reviewer decides), one with neither is refused for want of a label."""
    failures = list(
        bug.failures.filter(item__isnull=False)
        .order_by("id")
        .values_list("item_id", "item__external_id", "expected_label")
    )
    if not failures:
        raise ValidationFailed(
            f"Bug #{bug.pk} has no failures with items to add.", fields={"add_bug": ["No failures with items."]}
        )
    external, expected = {}, {}
    for item_id, external_id, label in failures:
        external[item_id] = external_id
        if label:
            expected.setdefault(item_id, set()).add(label)
    truth = dict(GroundTruth.objects.filter(item_id__in=list(external)).values_list("item_id", "label"))
    additions, unlabeled, conflicts = [], [], []
    for item_id, external_id in external.items():
        gt, exp = truth.get(item_id), expected.get(item_id, set())
        if gt is not None and exp - {gt}:
            conflicts += [{"external_id": external_id, "expected": e, "ground_truth": gt} for e in sorted(exp - {gt})]
        elif gt is not None:
            additions.append(Addition(item_id, gt, bug.pk))
        elif len(exp) == 1:
            additions.append(Addition(item_id, next(iter(exp)), bug.pk))
        elif exp:  # failures of one item that expect different labels: a person decides
            conflicts += [{"external_id": external_id, "expected": e, "ground_truth": None} for e in sorted(exp)]
        else:
            unlabeled.append(external_id)
    return additions, unlabeled, conflicts, external


def _search_spec(search) -> tuple[str, str | None, int]:
    q = (search.get("q") or "").strip()
    status = search.get("status") or None
    limit = search.get("limit")
    if status is not None and status not in ItemStatus.values:
        raise ValidationFailed(
            f"add_search.status must be one of {', '.join(ItemStatus.values)}.",
            fields={"add_search": {"status": ["Invalid choice."]}},
        )
    if not q and status is None:
        raise ValidationFailed(
            "add_search needs a text (q) or a status.", fields={"add_search": {"q": ["Give a text or a status."]}}
        )
    if not isinstance(limit, int) or isinstance(limit, bool) or not (1 <= limit <= MAX_SEARCH_ADD):
        raise ValidationFailed(
            f"add_search.limit must be an integer from 1 to {MAX_SEARCH_ADD}.",
            fields={"add_search": {"limit": [f"An integer from 1 to {MAX_SEARCH_ADD}."]}},
        )
    return q, status, limit


def _by_external_id(dataset, external_ids) -> tuple[dict, list[str]]:
    found = {}
    for start in range(0, len(external_ids), 5000):
        found.update(
            Item.objects.filter(
                project_id=dataset.project_id, external_id__in=external_ids[start : start + 5000]
            ).values_list("external_id", "id")
        )
    return found, [e for e in external_ids if e not in found]


def dataset_curate(
    *,
    dataset: Dataset,
    actor,
    add_external_ids=(),
    remove_external_ids=(),
    add_bug: int | None = None,
    remove_bug: int | None = None,
    add_search: dict | None = None,
    note: str = "",
    skip_refused: bool = False,
) -> Curation:
    """One new version with every change asked for (added items carry their current ground truth;
    a bug's failures carry the bug as provenance), or none when nothing would change.

    - `add_bug`: the bug's failures (see _bug_additions for their labels);
    - `remove_bug`: the live members the bug added or whose items are its failures;
    - `add_search` {q, status?, limit}: the newest `limit` items matching the search that are not
      in the dataset yet (the search the datasets page shows: selectors.datasets.item_search).
    Unknown external ids, an unknown bug, or an item both added and removed: 400, nothing written.
    Items without ground truth and conflicts: 400 listing them, or skipped with `skip_refused`."""
    add_external_ids = list(dict.fromkeys(add_external_ids))
    remove_external_ids = list(dict.fromkeys(remove_external_ids))
    if not (add_external_ids or remove_external_ids or add_bug or remove_bug or add_search):
        raise ValidationFailed(
            "Give items to add or remove: add, remove, add_bug, remove_bug or add_search.",
            fields={"add": ["Nothing to do."]},
        )
    found, unknown = _by_external_id(dataset, add_external_ids + remove_external_ids)
    if unknown:
        raise ValidationFailed(
            f"Nothing was changed: {len(unknown)} unknown external_ids.",
            code="invalid_items",
            fields={"unknown": unknown[:MAX_LISTED]},
        )
    additions: dict[int, Addition] = {}
    names: dict[int, str] = {e_id: e for e, e_id in found.items()}
    unlabeled: list[str] = []
    conflicts: list[dict] = []
    notes = []

    bug = None
    if add_bug:
        bug = _project_bug(dataset, add_bug, "add_bug")
        bug_adds, bug_unlabeled, conflicts, bug_names = _bug_additions(dataset, bug)
        names.update(bug_names)
        unlabeled += bug_unlabeled
        additions.update((a.item_id, a) for a in bug_adds)
        notes.append(f"Failures of bug #{bug.pk}: {bug.title}")

    plain = [found[e] for e in add_external_ids]
    search = None
    if add_search:
        q, status, limit = _search_spec(add_search)
        rows = item_search(project_id=dataset.project_id, q=q, status=status, limit=limit, dataset_id=dataset.pk)
        rows_out = [r for r in rows if not r[5]]
        names.update((r[0], r[1]) for r in rows_out)
        search_ids = [r[0] for r in rows_out]
        plain += search_ids
        what = " ".join(x for x in (f'"{q}"' if q else "", f"status {status}" if status else "") if x)
        search = (what, search_ids)
    truth = dict(
        GroundTruth.objects.filter(item_id__in=[i for i in plain if i not in additions]).values_list("item_id", "label")
    )
    held_back = {c["external_id"] for c in conflicts} | set(unlabeled)
    for item_id in plain:
        if item_id in additions or names[item_id] in held_back:
            continue
        if item_id in truth:
            additions[item_id] = Addition(item_id, truth[item_id])
        else:
            unlabeled.append(names[item_id])
            held_back.add(names[item_id])

    remove_ids = [found[e] for e in remove_external_ids]
    if remove_bug:
        gone = _project_bug(dataset, remove_bug, "remove_bug")
        failure_items = gone.failures.filter(item__isnull=False).values("item_id")
        remove_ids += list(
            live_members(dataset.pk)
            .filter(Q(bug_id=gone.pk) | Q(item_id__in=failure_items))
            .values_list("item_id", flat=True)
        )
        notes.append(f"Removed bug #{gone.pk}'s items")
        bug = bug or gone
    both = sorted({names.get(i, str(i)) for i in set(additions) & set(remove_ids)})
    if both:
        raise ValidationFailed(
            f"Cannot add and remove the same items: {', '.join(both[:20])}.", fields={"add": both[:100]}
        )

    if (unlabeled or conflicts) and not skip_refused:
        parts = []
        if unlabeled:
            parts.append(f"{len(unlabeled)} items without ground truth")
        if conflicts:
            parts.append(
                f"{len(conflicts)} failures whose expected label disagrees with the ground truth (a reviewer decides)"
            )
        fields = {}
        if unlabeled:
            fields["without_ground_truth"] = unlabeled[:MAX_LISTED]
        if conflicts:
            fields["conflicts"] = [
                f"{c['external_id']}: expected {c['expected']}, ground truth {c['ground_truth']}"
                for c in conflicts[:MAX_LISTED]
            ]
        raise ValidationFailed(
            f"Nothing was changed: {' and '.join(parts)}. Send skip_refused to add the others.",
            code="invalid_items",
            fields=fields,
        )
    if search:
        what, search_ids = search
        notes.insert(1 if add_bug else 0, f"Search {what}: {sum(1 for i in search_ids if i in additions)} items added")
    result = Curation(version=None, without_ground_truth=unlabeled[:MAX_LISTED], conflicts=conflicts[:MAX_LISTED])
    if not additions and not remove_ids:
        return result
    result.version = dataset_version_create(
        dataset_id=dataset.pk,
        actor=actor,
        add=list(additions.values()),
        remove_item_ids=remove_ids,
        reason=VersionReason.MANUAL,
        note=(note or "; ".join(notes))[:2000],
        bug_id=bug.pk if bug else None,
    )
    return result

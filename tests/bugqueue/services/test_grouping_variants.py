"""Grouping ignores punctuation and variable parts of a title; a client's fingerprint stays exact;
the data migration regroups existing bugs without breaking one open bug per fingerprint."""

import hashlib
import importlib

import pytest
from django.apps import apps

from bugqueue.models import Bug, BugEvent
from bugqueue.services.grouping import default_fingerprint, normalize_title
from tests.bugqueue.factories import make_bug, report

pytestmark = pytest.mark.django_db

regroup = importlib.import_module("bugqueue.migrations.0009_regroup_default_fingerprints")


@pytest.mark.parametrize(
    "a, b",
    [
        ("Label flip on refunds.", "label flip on refunds"),
        ("Label flip on refunds!", "Label flip on refunds"),
        ("Label flip, on refunds", "Label flip on refunds..."),
        ("Wrong label for item 123", "wrong label for item 456"),
        (
            "Timeout for request 3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "Timeout for request 9c2b7d1e-0000-4000-8000-000000000001",
        ),
        ("Object 0x7f3a failed", "Object 0x11 failed"),
        ("Cannot parse 'abc' in field", 'Cannot parse "xyz" in field'),
        ("Mail to bob@example.com bounced", "Mail to ann@corp.example.org bounced"),
        ("Fetch https://a.example/x?id=1 failed", "Fetch http://b.example/y failed"),
        ("Batch 2026-05-01 rejected (score 0.93)", "Batch 2026-06-11 rejected (score 0.5)"),
    ],
)
def test_punctuation_and_variable_parts_group(a, b):
    assert normalize_title(a) == normalize_title(b)
    assert default_fingerprint(kind="user_report", title=a) == default_fingerprint(kind="user_report", title=b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("Label flip on refunds", "Label flip on shipping"),
        ("Model v3 drops accents", "Model v4 drops accents"),  # a version inside a word is not a number
        ("snake_case_field missing", "snake case field missing"),
    ],
)
def test_different_words_stay_apart(a, b):
    assert normalize_title(a) != normalize_title(b)


def test_reports_with_punctuation_variants_make_one_bug(project):
    first = report(project, title="Label flip on refunds.")
    results = [
        report(project, title=t)
        for t in (
            "label flip on refunds",
            "Label flip on refunds!",
            "Label flip, on refunds",
            "LABEL FLIP ON REFUNDS?!",
        )
    ]
    assert first.created and not any(r.created for r in results)
    assert {r.bug.pk for r in results} == {first.bug.pk}
    assert Bug.objects.get(pk=first.bug.pk).occurrences == 5
    items = [report(project, title=f"Wrong label for item {n}") for n in (123, 456, 78901)]
    assert [r.created for r in items] == [True, False, False] and len({r.bug.pk for r in items}) == 1


def test_client_fingerprints_stay_exact(project):
    a = report(project, title="x", fingerprint="Refunds.v1")
    b = report(project, title="x", fingerprint="refunds.v1")
    c = report(project, title="x", fingerprint="Refunds.v1 ")  # stripped as before, else exact
    assert a.created and b.created and not c.created
    assert Bug.objects.get(pk=a.bug.pk).fingerprint == "Refunds.v1"


def _old_default(kind, title):
    return hashlib.sha256(f"{kind}\x1f{' '.join(title.split()).casefold()}".encode()).hexdigest()


def test_migration_recomputes_default_fingerprints_and_never_opens_two_bugs_per_fingerprint(project):
    """Bugs filed the old way: #older and #newer have titles that differ by a trailing '.', so both
    are open; a client fingerprint and a closed bug are there too."""

    def old_bug(title, **kw):
        return make_bug(project, title=title, fingerprint=_old_default("user_report", title), **kw)

    older = old_bug("Label flip on refunds")
    newer = old_bug("Label flip on refunds.")
    punct = old_bug("Accents dropped!")
    custom = make_bug(project, title="Custom one.", fingerprint="my-fp")
    closed = old_bug("Seed not set.")
    Bug.objects.filter(pk=closed.pk).update(status="resolved")
    assert Bug.objects.get(pk=older.pk).fingerprint != Bug.objects.get(pk=newer.pk).fingerprint

    regroup.regroup(apps, None)

    new_fp = default_fingerprint(kind=older.kind, title=older.title)
    assert Bug.objects.get(pk=older.pk).fingerprint == new_fp  # unchanged: already the new form
    assert Bug.objects.get(pk=newer.pk).fingerprint == _old_default(newer.kind, newer.title)  # left, and says so
    note = BugEvent.objects.get(bug=newer, field="fingerprint").note
    assert f"#{older.pk}" in note and "merge" in note
    assert Bug.objects.get(pk=punct.pk).fingerprint == default_fingerprint(kind=punct.kind, title="accents dropped")
    assert Bug.objects.get(pk=custom.pk).fingerprint == "my-fp"
    assert Bug.objects.get(pk=closed.pk).fingerprint == default_fingerprint(kind=closed.kind, title="Seed not set")
    # New reports of either title land in the older bug.
    assert report(project, title="Label flip on refunds.").bug.pk == older.pk
    assert report(project, title="Accents dropped").bug.pk == punct.pk

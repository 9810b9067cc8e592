"""The bug page's comments on its failing items: one query for any number of items, labeling's rule
for who reads which comment (labeling.selectors.comments.comments_on_items), and a failure hidden by
blind labeling is no way to its item's comments."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bugqueue.selectors.bug_page import bug_item_comments
from labeling.models import ItemComment, Role
from labeling.services.annotations import annotation_submit
from labeling.services.comments import comment_post
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.queue.claim import assignment_claim_next
from tests.bugqueue.factories import failing_bug, ingest_items, spelled
from tests.labeling.factories import ProjectFactory, add_member

pytestmark = pytest.mark.django_db


def web(user):
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def world(user):
    """A bug over three items. For the annotator: `mine` (they labeled it, resolved: closed to them),
    `resolved` (decided without them: could still reach their queue), `open`."""
    project = ProjectFactory(creator=user, annotations_per_item=1)
    annotator = add_member(project, role=Role.ANNOTATOR)
    reviewer = add_member(project, role=Role.REVIEWER)
    mine, resolved, opened = ingest_items(project, 3, label="pos")
    claim = assignment_claim_next(project=project, annotator=annotator)
    assert claim.item_id == mine.pk
    annotation_submit(assignment_id=claim.assignment_id, annotator=annotator, label="neg")
    ground_truth_set_many(project_id=project.pk, decisions=[Decision(resolved.pk, "neg", "imported")])
    bug = failing_bug(project, failures=[(mine, "neg"), (resolved, "neg"), (opened, None)])
    for it in (mine, resolved, opened):
        it.refresh_from_db()
    return {
        "project": project,
        "manager": user,
        "annotator": annotator,
        "reviewer": reviewer,
        "bug": bug,
        "mine": mine,
        "resolved": resolved,
        "open": opened,
    }


def _say(item, who, text):
    return comment_post(item=item, author=who, text=text)


def test_page_lists_item_comments_with_links_for_a_reviewer(world):
    _say(world["mine"], world["reviewer"], "reviewer on mine")
    _say(world["open"], world["annotator"], "annotator on open")
    _say(world["resolved"], world["manager"], "manager on resolved, ask @" + world["reviewer"].username)
    html = web(world["reviewer"]).get(f"/bugs/{world['bug'].pk}").content.decode()
    section = html.split('id="failure-comments"')[1].split("</section>")[0]
    for text in ("reviewer on mine", "annotator on open", "manager on resolved"):
        assert text in section
    project = world["project"].pk
    for key in ("mine", "resolved", "open"):
        assert f'href="/projects/{project}/items/{world[key].pk}" class="cm-item-link"' in section
    # the comment form is offered for each failing item, with comments.js
    assert 'id="failure-comment-item"' in section and "loupe/comments.js" in html
    for key in ("mine", "resolved", "open"):
        assert f'<option value="{world[key].pk}">' in section


def test_annotator_sees_only_what_labeling_lets_them(world):
    _say(world["mine"], world["reviewer"], "reviewer on mine")  # closed to the annotator: readable
    _say(world["mine"], world["annotator"], "annotator on mine")
    _say(world["open"], world["reviewer"], "reviewer on open")  # still open to them: not readable
    _say(world["open"], world["annotator"], "annotator on open")  # their own, but the failure is hidden
    _say(world["resolved"], world["manager"], "manager on resolved")
    data = bug_item_comments(bug=_bug_as(world, "annotator"), user=world["annotator"])
    assert sorted(c.text for c in data["item_comments"]) == ["annotator on mine", "reviewer on mine"]
    html = web(world["annotator"]).get(f"/bugs/{world['bug'].pk}").content.decode()
    section = html.split('id="failure-comments"')[1].split("</section>")[0]
    assert "reviewer on mine" in section and "annotator on mine" in section
    assert "on open" not in section and "on resolved" not in section
    assert f'<option value="{world["open"].pk}">' not in section  # no form for a hidden failure's item
    full = bug_item_comments(bug=_bug_as(world, "reviewer"), user=world["reviewer"])
    assert len(full["item_comments"]) == 5


def _bug_as(world, who):
    from bugqueue.selectors.bugs import access_bug

    return access_bug(user=world[who], bug_id=world["bug"].pk)


def test_one_query_whatever_the_number_of_items(user, django_assert_max_num_queries):
    project = ProjectFactory(creator=user)
    annotator = add_member(project, role=Role.ANNOTATOR)

    def measure(n):
        items = ingest_items(project, n, prefix=f"n{n}")
        bug = failing_bug(project, title=f"bug {spelled(n)}", failures=[(it, "neg") for it in items])
        for it in items:
            _say(it, user, f"note on {it.external_id} @{annotator.username}")
        counts = {}
        for who in (user, annotator):
            from bugqueue.selectors.bugs import access_bug

            seen = access_bug(user=who, bug_id=bug.pk)
            with CaptureQueriesContext(connection) as ctx:
                data = bug_item_comments(bug=seen, user=who)
            counts[who.pk] = len(ctx.captured_queries)
            assert len(data["item_comments"]) == (n if who == user else 0)
        return counts

    assert measure(2) == measure(40)
    assert measure(3)[user.pk] == 1
    bug = failing_bug(project, title="page", failures=[(it, "neg") for it in ingest_items(project, 30, prefix="pg")])
    client = web(user)
    with django_assert_max_num_queries(21):  # the bug page (its own count: tests/bugqueue/views/test_bug_page.py)
        res = client.get(f"/bugs/{bug.pk}")
    assert res.status_code == 200


def test_newest_first_and_capped(world, monkeypatch):
    from labeling.selectors import comments as sel

    for i in range(5):
        _say(world["mine"], world["reviewer"], f"c{i}")
    rows, more = sel.comments_on_items(
        user=world["reviewer"],
        project=_bug_as(world, "reviewer").project,
        items=[world["mine"].pk, world["open"].pk],
        limit=3,
    )
    assert [c.text for c in rows] == ["c4", "c3", "c2"] and more is True
    assert ItemComment.objects.count() == 5

"""What the review pane reads about an item: the majority label, the label it highlights (never one
nobody chose) and, for a consensus no annotator chose, why in words."""

import pytest

from labeling.models import GroundTruth
from labeling.selectors.quality import review_context
from tests.labeling.review_data import review_project

pytestmark = pytest.mark.django_db


def test_a_consensus_nobody_chose_is_explained_and_the_majority_is_highlighted():
    _, _, _, items = review_project()
    ctx = review_context(item=items["ticket-00264"])
    assert ctx.result.consensus_label == "feature"
    assert ctx.majority == {"label": "bug", "name": "Bug", "votes": 2, "of": 3}
    assert ctx.suggested_label == "bug"
    assert ctx.explanation == (
        "The model and the annotators' track records point to Feature (quality 0.12), a label no annotator chose; "
        "the majority said Bug (2 of 3)."
    )


def test_a_unanimous_label_the_consensus_contradicts():
    _, _, _, items = review_project()
    item = items["ticket-unanimous"]
    assert GroundTruth.objects.get(item=item).method == "unanimous"  # kept until a reviewer decides
    ctx = review_context(item=item)
    assert ctx.majority == {"label": "bug", "name": "Bug", "votes": 3, "of": 3}
    assert ctx.suggested_label == "bug"
    assert ctx.explanation == "All 3 annotators said Bug; cleanlab's consensus is Feature (quality 0.21)."
    assert ctx.current == {"label": "bug", "name": "Bug", "method": "unanimous"}


def test_a_tie_highlights_nothing():
    _, _, _, items = review_project()
    ctx = review_context(item=items["ticket-tie"])
    assert ctx.majority is None and ctx.suggested_label is None
    assert ctx.explanation.endswith("a label no annotator chose; the 2 annotators split with no majority.")


def test_a_consensus_some_annotators_chose_needs_no_explanation():
    _, _, _, items = review_project()
    ctx = review_context(item=items["ticket-plain"])
    assert ctx.suggested_label == "bug" and ctx.explanation == "" and ctx.current is None  # no label yet
    assert ctx.majority == {"label": "bug", "name": "Bug", "votes": 2, "of": 3}

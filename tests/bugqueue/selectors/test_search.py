"""The stream's search parser: a pure function (no database), good queries and bad ones."""

import pytest

from bugqueue.selectors.search import KEYS, ParsedQuery, Term, search_parse
from common.errors import ValidationFailed

pytestmark = pytest.mark.django_db  # the package conftest seeds the tags for every test


def test_the_full_grammar():
    parsed = search_parse(
        'is:unresolved is:regressed assigned:me tag:label_flip kind:failed_prediction model:v3 priority:p0..p1 "free text"'
    )
    assert parsed.terms == (
        Term("is", ("unresolved",)),
        Term("is", ("regressed",)),
        Term("assigned", ("me",)),
        Term("tag", ("label_flip",)),
        Term("kind", ("failed_prediction",)),
        Term("model", ("v3",)),
        Term("priority", ("p0", "p1")),
    )
    assert parsed.text == ("free text",)


@pytest.mark.parametrize(
    "q, terms, text",
    [
        ("", (), ()),
        ("   ", (), ()),
        ("priority:p1", (Term("priority", ("p1",)),), ()),
        ("priority:p2..p0", (Term("priority", ("p0", "p1", "p2")),), ()),  # a range either way round
        ("priority:p0,p3", (Term("priority", ("p0", "p3")),), ()),
        ("-tag:data_drift", (Term("tag", ("data_drift",), negated=True),), ()),
        ("tag:a,b", (Term("tag", ("a", "b")),), ()),
        ('model:"v3 beta"', (Term("model", ("v3 beta",)),), ()),
        ("assigned:none assigned:Rita", (Term("assigned", ("none",)), Term("assigned", ("Rita",))), ()),
        ("IS:Snoozed", (Term("is", ("snoozed",)),), ()),
        ("refund shipping", (), ("refund", "shipping")),
        ('"refund to shipping" is:open', (Term("is", ("open",)),), ("refund to shipping",)),
        ("is:wont_fix", (Term("is", ("wont_fix",)),), ()),
    ],
)
def test_good_queries(q, terms, text):
    parsed = search_parse(q)
    assert parsed.terms == terms and parsed.text == text


@pytest.mark.parametrize(
    "q, says",
    [
        ("color:red", "Unknown search key 'color': the known keys are " + ", ".join(KEYS)),
        ("assignee:me", "Unknown search key 'assignee'"),
        ("is:sleeping", "is:sleeping is not known"),
        ("priority:p9", "priority:p9"),
        ("priority:p0..p7", "a range goes from"),
        ("kind:crash", "kind:crash is not known"),
        ("tag:", "tag: needs a value"),
        ('tag:""', "tag: needs a value"),
        ('"unclosed', "A quote is not closed"),
        ("x" * 501, "at most 500 characters"),
    ],
)
def test_bad_queries_name_the_problem(q, says):
    with pytest.raises(ValidationFailed) as err:
        search_parse(q)
    assert says in err.value.message
    assert err.value.fields == {"q": [err.value.message]}
    assert err.value.status == 400


def test_values_helper():
    parsed = search_parse("tag:a -tag:b tag:c")
    assert parsed.values("tag") == ["a", "c"] and parsed.values("tag", negated=True) == ["b"]
    assert parsed.has_status is False and search_parse("is:open").has_status is True
    assert ParsedQuery().terms == ()

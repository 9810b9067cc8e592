"""labeling.stats.data_profile: profiles and the checks, without the database."""

import pytest

from labeling.stats.data_profile import (
    MIN_REFERENCE,
    batch_frame,
    distance_limit,
    ks_from_quantiles,
    profile_batch,
    run_checks,
    scalar_range,
    top_probabilities,
    total_variation,
)
from tests.labeling.data_check_batches import SHIFTED_CHECKS, batch_rows


def _batch(rows):
    return batch_frame(
        external_ids=[r["external_id"] for r in rows],
        payloads=[r["payload"] for r in rows],
        labels=[r["prediction"]["label"] for r in rows],
        confidence=top_probabilities([(r["prediction"]["label"], r["prediction"]["probabilities"]) for r in rows]),
    )


def _profile(seed, **kw):
    return profile_batch(_batch(batch_rows(seed, **kw)))


def test_profile_has_types_missing_quantiles_categories_and_prediction_mix():
    p = _profile(1)
    f = p["fields"]
    assert p["rows"] == 200
    assert f["amount"]["type"] == "number" and len(f["amount"]["quantiles"]) == 9
    assert f["channel"]["type"] == "string" and set(f["channel"]["categories"]) == {"email", "chat", "phone"}
    assert abs(sum(f["channel"]["categories"].values()) - 1) < 1e-6
    assert "categories" not in f["text"] and len(f["text"]["length"]) == 9  # many distinct values: text
    assert 0 <= f["note"]["missing"] < 0.5
    assert set(p["prediction"]["classes"]) <= {"pos", "neg", "neu"}
    assert 1 / 3 < p["prediction"]["confidence"] < 1


def test_a_key_sent_only_as_null_is_absent_and_types_are_told_apart():
    b = batch_frame(
        external_ids=["a", "b"],
        payloads=[
            {"x": None, "n": 1, "f": 1.5, "s": "t", "o": {"k": 1}, "m": 1},
            {"x": None, "n": 2, "f": 2, "m": "a"},
        ],
        labels=[None, None],
        confidence=top_probabilities([None, None]),
    )
    f = profile_batch(b)["fields"]
    assert "x" not in f
    assert (f["n"]["type"], f["f"]["type"], f["s"]["type"], f["o"]["type"], f["m"]["type"]) == (
        "number",
        "number",
        "string",
        "object",
        "mixed",
    )
    assert f["s"]["missing"] == 0.5


def test_first_batches_only_learn():
    ref = [_profile(s) for s in range(MIN_REFERENCE - 1)]
    assert run_checks(_profile(99, shifted=True), ref) == []


def test_normal_variation_does_not_fire():
    ref = [_profile(s) for s in range(20)]
    for seed in range(100, 110):
        fired = [(r.field, r.check) for r in run_checks(_profile(seed), ref) if r.fired]
        assert fired == [], seed


def test_shifted_batch_fires_the_right_checks_with_figures():
    ref = [_profile(s) for s in range(20)]
    results = {(r.field, r.check): r for r in run_checks(_profile(99, shifted=True), ref)}
    fired = {k for k, r in results.items() if r.fired}
    assert fired == SHIFTED_CHECKS
    cat = results[("channel", "category_shift")]
    assert "fax" in cat.observed["new"] and cat.observed["tvd"] > cat.expected["tvd"]["max"]
    num = results[("amount", "numeric_shift")]
    assert num.observed["p50"] > 200 and num.expected["p50"][1] < 110
    d = num.as_dict()
    assert set(d) == {"field", "check", "observed", "expected", "would_have_fired", "of_last"}
    assert d["of_last"] == 20 and d["would_have_fired"] == 0


def test_the_field_that_always_varies_widens_its_own_range():
    ref = [_profile(s) for s in range(20)]
    note = next(r for r in run_checks(_profile(5), ref) if (r.field, r.check) == ("note", "missing_share"))
    lo, hi = note.expected["min"], note.expected["max"]
    assert hi - lo > 0.3  # learned from the spread, not a fixed tolerance
    assert not note.fired


def test_backtest_counts_leave_one_out_firings():
    # Missing shares of 0.1 in 5 reference batches, then one of 0.9: judged against the others,
    # only that one would have fired.
    ref = [{"fields": {"f": {"type": "number", "missing": m}}, "prediction": {}} for m in (0.1,) * 5 + (0.9,)]
    cur = {"fields": {"f": {"type": "number", "missing": 0.1}}, "prediction": {}}
    (res,) = [r for r in run_checks(cur, ref) if r.check == "missing_share"]
    assert not res.fired and res.backtest == 1 and res.reference == 6
    # And a field absent from one of six batches: that batch would have fired missing_field
    # (present in 5 of the other 5), nothing else.
    ref = [{"fields": {"g": {"type": "string", "missing": 0.0}}, "prediction": {}} for _ in range(5)]
    ref.append({"fields": {}, "prediction": {}})
    (res,) = [r for r in run_checks({"fields": {}, "prediction": {}}, ref) if r.check == "missing_field"]
    assert res.fired and res.backtest == 1


def test_type_change_and_new_field_and_confidence_drop():
    ref = [
        {
            "fields": {"f": {"type": "number", "missing": 0.0}},
            "prediction": {"classes": {"a": 0.5, "b": 0.5}, "confidence": c},
        }
        for c in (0.80, 0.82, 0.81, 0.79)
    ]
    cur = {
        "fields": {"f": {"type": "string", "missing": 0.0}, "g": {"type": "number", "missing": 0.0}},
        "prediction": {"classes": {"a": 0.5, "b": 0.5}, "confidence": 0.6},
    }
    fired = {(r.field, r.check) for r in run_checks(cur, ref) if r.fired}
    assert fired == {("f", "type_change"), ("g", "new_field"), ("prediction", "confidence_drop")}


def test_distances_and_ranges():
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    assert total_variation({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0
    grid = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert ks_from_quantiles(grid, grid) == 0.0
    assert ks_from_quantiles(grid, [v + 100 for v in grid]) >= 0.99  # the grid ends at p99
    assert scalar_range([0.1] * 5 + [0.9], 0.02) == pytest.approx((0.08, 0.12))  # an odd one does not widen it
    assert distance_limit([0.01, 0.01, 0.01], 0.05) == 0.05
    assert abs(distance_limit([0.01, 0.02, 0.03], 0.05) - 0.055) < 1e-9  # q75 + 3 × IQR

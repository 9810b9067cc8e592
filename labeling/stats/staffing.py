"""Staffing for the feedback-delay report: the people-hours per day needed to keep up with the
predictions arriving, from the work completed items measured (annotations and review decisions per
item, median seconds of each). Pure arithmetic; labeling.selectors.feedback reads the inputs and
STAFFING_DEFINITIONS states each figure's definition (the API and the delay page show them)."""

from dataclasses import dataclass

import numpy as np

STAFFING_WINDOW_DAYS = 7
SAMPLE = 2000  # the latest annotations / review decisions whose durations are sampled


def _r(x, digits=4):
    return None if x is None else round(float(x), digits)


@dataclass(frozen=True)
class StaffingWork:
    """What the completed items measured (labeling.selectors.feedback reads it, project-wide).
    completed_items: resolved items with at least one annotation; annotations: their annotations;
    reviews: reviewers' decisions on them (adjudicated label changes); review_seconds: a sample of
    review durations (review lease taken to decision)."""

    completed_items: int = 0
    annotations: int = 0
    reviews: int = 0
    review_seconds: tuple = ()


STAFFING_DEFINITIONS = {
    "arrivals_per_day": f"Predictions per day over the last {STAFFING_WINDOW_DAYS} whole days of the selection.",
    "annotations_per_item": (
        "Measured: annotations per completed item (resolved items with at least one annotation, escalations "
        "included), project-wide; the project's configured annotations per item until an item is completed."
    ),
    "median_seconds_per_annotation": "Median time annotators spent on an annotation (the latest 2,000).",
    "annotator_hours_per_day_needed": (
        "Arrivals per day × annotations per item × median seconds per annotation / 3600."
    ),
    "reviews_per_item": (
        "Measured: reviewers' decisions (adjudicated labels) per completed item, project-wide (0 until one is "
        "completed)."
    ),
    "reviews_per_day": "Arrivals per day × reviews per item: the review decisions a day's arrivals will need.",
    "median_seconds_per_review": (
        "Median time from taking a review lease to the decision (the latest 2,000 decisions made under a "
        "lease); a lease taken again after it expired counts from when it was taken again."
    ),
    "review_hours_per_day_needed": "Reviews per day × median seconds per review / 3600.",
    "hours_per_day_needed": "Annotator-hours plus review hours per day.",
}


def staffing_compute(*, arrivals_per_day, annotation_seconds, work: StaffingWork, configured_annotations_per_item):
    """People-hours per day to keep up with the arrivals, from measured work per completed item (see
    STAFFING_DEFINITIONS; `annotations_per_item_source` says whether the mean was measured)."""
    measured = work.completed_items > 0
    per_item = work.annotations / work.completed_items if measured else float(configured_annotations_per_item)
    median_seconds = float(np.median(annotation_seconds)) if len(annotation_seconds) else None
    hours = arrivals_per_day * per_item * median_seconds / 3600 if median_seconds is not None else None
    reviews_per_item = work.reviews / work.completed_items if measured else 0.0
    reviews_per_day = arrivals_per_day * reviews_per_item
    review_median = float(np.median(work.review_seconds)) if len(work.review_seconds) else None
    if reviews_per_day == 0:
        review_hours = 0.0
    else:
        review_hours = reviews_per_day * review_median / 3600 if review_median is not None else None
    total = hours + review_hours if hours is not None and review_hours is not None else None
    return {
        "arrivals_per_day": round(arrivals_per_day, 2),
        "median_seconds_per_annotation": _r(median_seconds, 1),
        "annotations_per_item": _r(per_item, 3),
        "annotations_per_item_source": "measured" if measured else "configured",
        "configured_annotations_per_item": int(configured_annotations_per_item),
        "completed_items": int(work.completed_items),
        "annotator_hours_per_day_needed": _r(hours, 2),
        "reviews_per_item": _r(reviews_per_item, 4),
        "reviews_per_day": round(reviews_per_day, 2),
        "median_seconds_per_review": _r(review_median, 1),
        "review_hours_per_day_needed": _r(review_hours, 2),
        "hours_per_day_needed": _r(total, 2),
        "definitions": STAFFING_DEFINITIONS,
    }

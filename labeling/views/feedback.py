"""The feedback-delay dashboard (/projects/{id}/delay): server-rendered, charts drawn by the
vendored Chart.js from the report embedded as JSON. Filters (model version, source, stage, days, and
the slice field live accuracy is split by) are a plain GET form."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from common.errors import ValidationFailed
from labeling.models import Stage
from labeling.selectors.access import MANAGER_ROLES, REVIEW_ROLES
from labeling.selectors.feedback import (
    DelayFilters,
    feedback_attention_counts,
    feedback_delay_report,
    feedback_filters_parse,
    feedback_model_versions,
    feedback_slo_state,
    feedback_sources,
)
from labeling.selectors.registry import models_list
from labeling.stats.delay_report import STAGE_ORDER
from labeling.views.projects import page_project

COHORT_WEEKS_SHOWN = 16
COHORT_DAYS_SHOWN = 28


@login_required
def feedback_delay_page(request, project_id):
    project = page_project(request, project_id, roles=REVIEW_ROLES)
    error = None
    try:
        filters = feedback_filters_parse(project=project, params=request.GET, allow_unknown=True)
    except ValidationFailed as exc:
        error, filters = exc, DelayFilters()
    report = feedback_delay_report(project=project, filters=filters, charts=True)
    cohorts = report["cohorts"][-COHORT_WEEKS_SHOWN:]
    width = min(max((len(c["fraction_labeled_by_day"]) for c in cohorts), default=0), COHORT_DAYS_SHOWN)
    cohort_rows = [
        {
            "week": c["week"],
            "predictions": c["predictions"],
            "cells": (c["fraction_labeled_by_day"][:width] + [None] * width)[:width],
        }
        for c in cohorts
    ]
    by_slice = report["live_by_slice"]
    slice_stages, slice_rows = [], []
    if by_slice:
        present = {s["stage"] for v in by_slice["values"] for s in v["by_stage"]}
        slice_stages = [s for s in (*STAGE_ORDER, None) if s in present]
        for v in by_slice["values"]:
            acc = {s["stage"]: s for s in v["by_stage"]}
            slice_rows.append({**v, "stages": [acc.get(s) for s in slice_stages]})
    chart_data = {
        "charts": report["charts"],
        "coverage": report["coverage"],
        "live": report["live_performance"],
        "slo": report["slo"],
        "stages": report["live_by_stage"],
        "slice": by_slice,
    }
    attention = feedback_attention_counts(project=project)
    context = {
        "project": project,
        "report": report,
        "filters": filters,
        "error": error,
        "versions": feedback_model_versions(project=project),
        "sources": feedback_sources(project=project),
        "state": feedback_slo_state(project=project),
        "cohort_rows": cohort_rows,
        "cohort_days": list(range(1, width + 1)),
        "chart_data": chart_data,
        "n_conflict": attention["conflict"],
        "n_pending": attention["pending"],
        "stage_choices": Stage.choices,
        "has_models": models_list(project=project).exists(),
        "slice_fields": list(project.slice_fields or []),
        "slice_stages": slice_stages,
        "slice_rows": slice_rows,
        "slice_chart_rem": max(12, round(len(slice_rows) * (1 + 0.7 * max(len(slice_stages), 1)) + 3)),
        "is_manager": project.user_role in MANAGER_ROLES,
        "filtered": bool(filters.as_query()),
    }
    return render(request, "labeling/feedback_delay.html", context, status=400 if error else 200)

"""Datasets page: datasets with their version history and deltas; models × datasets matrix."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render

from bugqueue.selectors import datasets as sel
from common.errors import Forbidden, NotFound
from labeling.selectors.blind import labels_visible_to
from labeling.views.projects import page_project


@login_required
def datasets_page(request, project_id):
    project = page_project(request, project_id)
    datasets = list(sel.dataset_list(project=project).prefetch_related("versions__created_by"))
    models, cells = sel.evaluation_matrix(project=project)
    matrix = [
        {"model": mv, "cells": [cells.get((mv, d.pk)) for d in datasets]}
        for mv in models
    ]
    return render(request, "bugqueue/datasets.html", {"project": project, "datasets": datasets, "matrix": matrix,
                                                      "tab": "datasets"})


@login_required
def evaluation_failures_page(request, evaluation_id, dataset_id):
    try:
        evaluation = sel.access_evaluation(user=request.user, evaluation_id=evaluation_id)
        dataset = sel.access_dataset(user=request.user, dataset_id=dataset_id)
    except NotFound:
        raise Http404
    except Forbidden as exc:
        raise PermissionDenied(exc.message)
    result = evaluation.results.filter(dataset=dataset).first()
    if result is None:
        raise Http404
    visibility = labels_visible_to(user=request.user, project=dataset.project)
    rows, hidden = sel.evaluation_failure_rows(evaluation=evaluation, result=result, visibility=visibility)
    return render(request, "bugqueue/evaluation_failures.html", {
        "project": dataset.project, "evaluation": evaluation, "dataset": dataset, "result": result, "rows": rows,
        "hidden": hidden, "regression_items": set(result.regression_items), "tab": "datasets"})

"""Datasets page: datasets with their version history and deltas; models × datasets matrix."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render

from bugqueue import selectors_datasets as sel
from bugqueue.models import EvaluationPrediction
from bugqueue.services.datasets import members_at
from labeling.errors import Forbidden, NotFound
from labeling.views import page_project


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
    members = members_at(dataset_id=dataset.pk, number=result.dataset_version)
    predicted = EvaluationPrediction.objects.filter(evaluation=evaluation, item_id__in=members.values("item_id"))
    pred = dict(predicted.values_list("item_id", "label"))
    rows = []
    for item_id, external_id, label, payload, bug_id in members.order_by("id").values_list(
            "item_id", "item__external_id", "label", "item__payload", "bug_id").iterator(chunk_size=2000):
        got = pred.get(item_id)
        if got != label:
            rows.append({"external_id": external_id, "expected": label, "predicted": got, "payload": payload, "bug": bug_id})
            if len(rows) >= 500:
                break
    return render(request, "bugqueue/evaluation_failures.html", {
        "project": dataset.project, "evaluation": evaluation, "dataset": dataset, "result": result, "rows": rows,
        "regression_items": set(result.regression_items), "tab": "datasets"})

"""The evaluation page (an evaluation's result on each dataset: gate verdict, confusion matrix,
recall per class, slices, regressions by bug) and its failures list, optionally one bug's
regressions. Thin: reads through selectors.evaluations."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render

from bugqueue.selectors import evaluations as sel
from common.errors import Forbidden, NotFound


def _page(read, **kwargs):
    try:
        return read(**kwargs)
    except NotFound:
        raise Http404
    except Forbidden as exc:
        raise PermissionDenied(exc.message)


@login_required
def evaluation_page(request, evaluation_id):
    view = _page(sel.evaluation_page, user=request.user, evaluation_id=evaluation_id)
    return render(request, "bugqueue/evaluation.html", {**view, "tab": "datasets"})


@login_required
def evaluation_failures_page(request, evaluation_id, dataset_id):
    view = _page(
        sel.evaluation_failures_view,
        user=request.user,
        evaluation_id=evaluation_id,
        dataset_id=dataset_id,
        bug_id=request.GET.get("bug") or None,
    )
    return render(request, "bugqueue/evaluation_failures.html", {**view, "tab": "datasets"})

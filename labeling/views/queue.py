"""The labeling page: keyboard-first, talks to the queue API (labeling.api.views_queue)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse

from labeling.selectors.labels import offered_labels
from labeling.selectors.queue import queue_progress
from labeling.views.projects import page_project


def label_keys(labels) -> list[dict]:
    """Each label's keys: its configured hotkey, and its position's number key (1-9) unless that digit
    is some label's configured hotkey."""
    taken = {lab.hotkey for lab in labels if lab.hotkey}
    out = []
    for i, lab in enumerate(labels):
        keys = [lab.hotkey] if lab.hotkey else []
        digit = str(i + 1)
        if i < 9 and digit not in taken and digit not in keys:
            keys.append(digit)
        out.append({"key": lab.key, "name": lab.name, "guideline": lab.guideline, "keys": keys})
    return out


@login_required
def label_page(request, project_id):
    project = page_project(request, project_id)
    labels = label_keys(offered_labels(project_id=project.pk))
    progress = queue_progress(project_id=project.pk, annotator=request.user)
    config = {
        "projectId": project.pk,
        "userId": request.user.pk,
        "nextUrl": reverse("api-queue-next", args=[project.pk]),
        "submitUrl": reverse("api-assignment-submit", args=[0]),
        "skipUrl": reverse("api-assignment-skip", args=[0]),
        "answersUrl": reverse("api-my-answers", args=[project.pk]),
        "remaining": progress.left,
        "editUrl": reverse("api-annotation-edit", args=[0]),
        "labels": [{"key": lab["key"], "name": lab["name"], "keys": lab["keys"]} for lab in labels],
    }
    return render(
        request,
        "labeling/label.html",
        {"project": project, "labels": labels, "progress": progress, "config": config},
    )

"""Datasets page: datasets with their version history and deltas, created, edited and curated in
place by managers."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from bugqueue.selectors import datasets as sel
from bugqueue.selectors.bugs import tag_list
from labeling.models import ItemStatus, Role
from labeling.views.projects import page_project


@login_required
def datasets_page(request, project_id):
    """Every member sees the datasets and their versions; managers also create, edit and curate
    them (static/bugqueue/datasets.js, through the datasets API)."""
    project = page_project(request, project_id)
    can_edit = project.user_role == Role.MANAGER
    tags = [{"slug": t.slug, "name": t.name} for t in tag_list()] if can_edit else []
    return render(
        request,
        "bugqueue/datasets.html",
        {
            "project": project,
            **sel.datasets_overview(project=project),
            "can_edit": can_edit,
            "tags": tags,
            "item_statuses": ItemStatus.choices,
            "tab": "datasets",
        },
    )

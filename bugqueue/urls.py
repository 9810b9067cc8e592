from django.urls import path

from bugqueue.views import bugs, datasets, evaluations, models, triage

urlpatterns = [
    path("bugs", bugs.bug_queue, name="bug-queue"),
    path("bugs/<int:bug_id>", bugs.bug_page, name="bug-page"),
    path("bugs/<int:bug_id>/comments", bugs.bug_comment, name="bug-comment"),
    path("bugs/<int:bug_id>/edit", bugs.bug_edit, name="bug-edit"),
    path("bugs/settings/<int:project_id>", bugs.bug_settings, name="bug-settings"),
    path("bugs/digests", triage.digest_list, name="digest-list"),
    path("bugs/digests/<int:digest_id>", triage.digest_page, name="digest-page"),
    path("triage", triage.triage, name="triage"),
    path("projects/<int:project_id>/datasets", datasets.datasets_page, name="datasets-page"),
    path("projects/<int:project_id>/models", models.models_page, name="models-page"),
    path("evaluations/<int:evaluation_id>", evaluations.evaluation_page, name="evaluation-page"),
    path(
        "evaluations/<int:evaluation_id>/datasets/<int:dataset_id>/failures",
        evaluations.evaluation_failures_page,
        name="evaluation-failures",
    ),
]

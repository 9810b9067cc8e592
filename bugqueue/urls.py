from django.urls import path

from bugqueue import views, views_datasets

urlpatterns = [
    path("bugs", views.bug_queue, name="bug-queue"),
    path("bugs/<int:bug_id>", views.bug_page, name="bug-page"),
    path("bugs/<int:bug_id>/comments", views.bug_comment, name="bug-comment"),
    path("bugs/<int:bug_id>/edit", views.bug_edit, name="bug-edit"),
    path("bugs/settings/<int:project_id>", views.bug_settings, name="bug-settings"),
    path("bugs/digests", views.digest_list, name="digest-list"),
    path("bugs/digests/<int:digest_id>", views.digest_page, name="digest-page"),
    path("triage", views.triage, name="triage"),
    path("projects/<int:project_id>/datasets", views_datasets.datasets_page, name="datasets-page"),
    path("evaluations/<int:evaluation_id>/datasets/<int:dataset_id>/failures", views_datasets.evaluation_failures_page,
         name="evaluation-failures"),
]

from django.urls import path

from labeling.views import export, feedback, projects, quality, queue

urlpatterns = [
    path("", projects.home, name="home"),
    path("projects/<int:project_id>/", projects.project_detail, name="project-detail"),
    path(
        "projects/<int:project_id>/settings/slice-fields",
        projects.project_slice_fields_view,
        name="project-slice-fields",
    ),
    path("projects/<int:project_id>/export", export.project_export, name="project-export"),
    path("projects/<int:project_id>/delay", feedback.feedback_delay_page, name="feedback-delay"),
    path("projects/<int:project_id>/label", queue.label_page, name="label"),
    path("projects/<int:project_id>/review", quality.review_page, name="review"),
    path("projects/<int:project_id>/review/next", quality.review_next_view, name="review-next"),
    path(
        "projects/<int:project_id>/review/items/<int:item_id>/resolve",
        quality.review_resolve_view,
        name="review-resolve",
    ),
    path("projects/<int:project_id>/review/items/<int:item_id>/skip", quality.review_skip_view, name="review-skip"),
    path("projects/<int:project_id>/review/items/<int:item_id>/undo", quality.review_undo_view, name="review-undo"),
    path("projects/<int:project_id>/quality", quality.quality_page, name="quality"),
    path("projects/<int:project_id>/quality/agreement", quality.quality_agreement_panel, name="quality-agreement"),
    path("projects/<int:project_id>/quality/annotators", quality.quality_annotators_panel, name="quality-annotators"),
    path("projects/<int:project_id>/quality/runs", quality.quality_run_create_view, name="quality-run-create"),
    path("projects/<int:project_id>/quality/settings", quality.quality_settings_view, name="quality-settings"),
]

from labeling.views import imports as imports_views  # noqa: E402

urlpatterns += [
    path("projects/<int:project_id>/import", imports_views.import_page, name="import-page"),
    path("projects/<int:project_id>/import/<int:import_id>", imports_views.import_detail, name="import-detail"),
]

from labeling.views import items  # noqa: E402

urlpatterns += [
    path("projects/<int:project_id>/items", items.items_page, name="items"),
    path("projects/<int:project_id>/items/<int:item_id>", items.item_page, name="item"),
]

# Project set-up pages and label set changes (views.projects_setup).
from labeling.views import projects_setup  # noqa: E402

urlpatterns += [
    path("projects/new", projects_setup.project_new, name="project-new"),
    path("projects/<int:project_id>/edit", projects_setup.project_edit, name="project-edit"),
    path(
        "projects/<int:project_id>/labels/add", projects_setup.project_label_op, {"op": "add"}, name="project-label-add"
    ),
    path(
        "projects/<int:project_id>/labels/<str:key>/<str:op>", projects_setup.project_label_op, name="project-label-op"
    ),
]

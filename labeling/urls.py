from django.urls import path

from labeling import views
from labeling import views_export
from labeling import views_quality

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:project_id>/", views.project_detail, name="project-detail"),
    path("projects/<int:project_id>/export", views_export.project_export, name="project-export"),
]

from labeling import views_feedback  # noqa: E402

urlpatterns += [
    path("projects/<int:project_id>/delay", views_feedback.feedback_delay_page, name="feedback-delay"),
]

from labeling import views_queue  # noqa: E402  (queue: issue 3)

urlpatterns += [
    path("projects/<int:project_id>/label", views_queue.label_page, name="label"),
    path("projects/<int:project_id>/review", views_quality.review_page, name="review"),
    path("projects/<int:project_id>/review/next", views_quality.review_next_view, name="review-next"),
    path("projects/<int:project_id>/review/items/<int:item_id>/resolve", views_quality.review_resolve_view, name="review-resolve"),
    path("projects/<int:project_id>/review/items/<int:item_id>/skip", views_quality.review_skip_view, name="review-skip"),
    path("projects/<int:project_id>/quality", views_quality.quality_page, name="quality"),
    path("projects/<int:project_id>/quality/agreement", views_quality.quality_agreement_panel, name="quality-agreement"),
    path("projects/<int:project_id>/quality/annotators", views_quality.quality_annotators_panel, name="quality-annotators"),
    path("projects/<int:project_id>/quality/runs", views_quality.quality_run_create_view, name="quality-run-create"),
    path("projects/<int:project_id>/quality/settings", views_quality.quality_settings_view, name="quality-settings"),
]

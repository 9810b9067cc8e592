from django.urls import path

from labeling import views
from labeling import views_export

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
]

from django.urls import path

from labeling import views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:project_id>/", views.project_detail, name="project-detail"),
]

from labeling import views_queue  # noqa: E402  (queue: issue 3)

urlpatterns += [
    path("projects/<int:project_id>/label", views_queue.label_page, name="label"),
]

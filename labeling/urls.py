from django.urls import path

from labeling import views
from labeling import views_export

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<int:project_id>/", views.project_detail, name="project-detail"),
    path("projects/<int:project_id>/export", views_export.project_export, name="project-export"),
]

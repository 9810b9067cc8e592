from django.urls import path

from labeling.api import views_accounts, views_projects
from labeling.api import views_quality

urlpatterns = [
    path("auth/token", views_accounts.TokenApi.as_view(), name="api-token"),
    path("users", views_accounts.UserCreateApi.as_view(), name="api-users"),
    path("me", views_accounts.MeApi.as_view(), name="api-me"),
    path("projects", views_projects.ProjectListCreateApi.as_view(), name="api-projects"),
    path("projects/<int:project_id>", views_projects.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<int:project_id>/members", views_projects.MemberListCreateApi.as_view(), name="api-members"),
    path("projects/<int:project_id>/members/<str:username>", views_projects.MemberDeleteApi.as_view(), name="api-member"),
    path("projects/<int:project_id>/items", views_projects.ItemListIngestApi.as_view(), name="api-items"),
    path("projects/<int:project_id>/quality-runs", views_quality.QualityRunListCreateApi.as_view(), name="api-quality-runs"),
    path("quality-runs/<int:run_id>", views_quality.QualityRunDetailApi.as_view(), name="api-quality-run"),
    path("quality-runs/<int:run_id>/items", views_quality.QualityRunItemsApi.as_view(), name="api-quality-run-items"),
    path("projects/<int:project_id>/quality-settings", views_quality.QualitySettingsApi.as_view(), name="api-quality-settings"),
    path("projects/<int:project_id>/review/next", views_quality.ReviewNextApi.as_view(), name="api-review-next"),
    path("items/<int:item_id>/review/skip", views_quality.ReviewSkipApi.as_view(), name="api-review-skip"),
    path("items/<int:item_id>/resolve", views_quality.ItemResolveApi.as_view(), name="api-item-resolve"),
    path("projects/<int:project_id>/annotators", views_quality.AnnotatorListApi.as_view(), name="api-annotators"),
    path("projects/<int:project_id>/agreement", views_quality.AgreementApi.as_view(), name="api-agreement"),
]

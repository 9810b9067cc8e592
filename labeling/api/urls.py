from django.urls import path

from labeling.api import views_accounts, views_projects

urlpatterns = [
    path("auth/token", views_accounts.TokenApi.as_view(), name="api-token"),
    path("users", views_accounts.UserCreateApi.as_view(), name="api-users"),
    path("me", views_accounts.MeApi.as_view(), name="api-me"),
    path("projects", views_projects.ProjectListCreateApi.as_view(), name="api-projects"),
    path("projects/<int:project_id>", views_projects.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<int:project_id>/members", views_projects.MemberListCreateApi.as_view(), name="api-members"),
    path("projects/<int:project_id>/members/<str:username>", views_projects.MemberDeleteApi.as_view(), name="api-member"),
    path("projects/<int:project_id>/items", views_projects.ItemListIngestApi.as_view(), name="api-items"),
]

from labeling.api import views_queue  # noqa: E402  (queue: issue 3)

urlpatterns += [
    path("projects/<int:project_id>/queue/next", views_queue.QueueNextApi.as_view(), name="api-queue-next"),
    path("assignments/<int:assignment_id>/submit", views_queue.SubmitApi.as_view(), name="api-assignment-submit"),
    path("assignments/<int:assignment_id>/skip", views_queue.SkipApi.as_view(), name="api-assignment-skip"),
    path("projects/<int:project_id>/annotations", views_queue.ProjectAnnotationsApi.as_view(), name="api-annotations"),
    path("me/stats", views_queue.MeStatsApi.as_view(), name="api-me-stats"),
]

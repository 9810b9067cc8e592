from django.urls import path

from bugqueue.api import views_bugs, views_triage

urlpatterns = [
    path("bugs", views_bugs.BugListCreateApi.as_view(), name="api-bugs"),
    path("bugs/<int:bug_id>", views_bugs.BugDetailApi.as_view(), name="api-bug"),
    path("bugs/<int:bug_id>/comments", views_bugs.BugCommentsApi.as_view(), name="api-bug-comments"),
    path("bugs/<int:bug_id>/resolve", views_bugs.BugResolveApi.as_view(), name="api-bug-resolve"),
    path("triage", views_triage.TriageApi.as_view(), name="api-triage"),
    path("tags", views_bugs.TagListApi.as_view(), name="api-tags"),
    path("projects/<int:project_id>/bug-settings", views_bugs.BugSettingsApi.as_view(), name="api-bug-settings"),
]

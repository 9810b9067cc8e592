from django.urls import path

from bugqueue.api import views_bugs, views_datasets, views_merge, views_models, views_stream, views_triage

urlpatterns = [
    path("bugs", views_bugs.BugListCreateApi.as_view(), name="api-bugs"),
    path("bugs/bulk", views_stream.BugBulkApi.as_view(), name="api-bugs-bulk"),
    path("bugs/merge", views_merge.BugMergeApi.as_view(), name="api-bugs-merge"),
    path("bugs/<int:bug_id>", views_bugs.BugDetailApi.as_view(), name="api-bug"),
    path("bugs/<int:bug_id>/snooze", views_stream.BugSnoozeApi.as_view(), name="api-bug-snooze"),
    path("bugs/<int:bug_id>/unsnooze", views_stream.BugUnsnoozeApi.as_view(), name="api-bug-unsnooze"),
    path("bugs/<int:bug_id>/comments", views_bugs.BugCommentsApi.as_view(), name="api-bug-comments"),
    path("bugs/<int:bug_id>/resolve", views_bugs.BugResolveApi.as_view(), name="api-bug-resolve"),
    path("bugs/<int:bug_id>/unmerge", views_merge.BugUnmergeApi.as_view(), name="api-bug-unmerge"),
    path("triage", views_triage.TriageApi.as_view(), name="api-triage"),
    path("tags", views_bugs.TagListApi.as_view(), name="api-tags"),
    path("projects/<int:project_id>/bug-settings", views_bugs.BugSettingsApi.as_view(), name="api-bug-settings"),
    # validation datasets and evaluations
    path("datasets", views_datasets.DatasetListCreateApi.as_view(), name="api-datasets"),
    path("datasets/<int:dataset_id>", views_datasets.DatasetDetailApi.as_view(), name="api-dataset"),
    path(
        "datasets/<int:dataset_id>/versions", views_datasets.DatasetVersionsApi.as_view(), name="api-dataset-versions"
    ),
    path(
        "datasets/<int:dataset_id>/item-search",
        views_datasets.DatasetItemSearchApi.as_view(),
        name="api-dataset-item-search",
    ),
    path(
        "datasets/<int:dataset_id>/versions/<int:number>/items",
        views_datasets.DatasetVersionItemsApi.as_view(),
        name="api-dataset-version-items",
    ),
    path(
        "datasets/<int:dataset_id>/versions/<int:number>/delta",
        views_datasets.DatasetVersionDeltaApi.as_view(),
        name="api-dataset-version-delta",
    ),
    path("bugs/<int:bug_id>/dataset-flows", views_datasets.BugDatasetFlowsApi.as_view(), name="api-bug-dataset-flows"),
    path("evaluations", views_datasets.EvaluationListCreateApi.as_view(), name="api-evaluations"),
    path("evaluations/rerun", views_datasets.EvaluationRerunApi.as_view(), name="api-evaluations-rerun"),
    path("evaluations/<int:evaluation_id>", views_datasets.EvaluationDetailApi.as_view(), name="api-evaluation"),
    # model registry and the promotion gate (a version may hold dots and slashes: gate and promote first)
    path("projects/<int:project_id>/models", views_models.ModelListCreateApi.as_view(), name="api-models"),
    path(
        "projects/<int:project_id>/models/<path:version>/gate",
        views_models.ModelGateApi.as_view(),
        name="api-model-gate",
    ),
    path(
        "projects/<int:project_id>/models/<path:version>/promote",
        views_models.ModelPromoteApi.as_view(),
        name="api-model-promote",
    ),
    path("projects/<int:project_id>/models/<path:version>", views_models.ModelDetailApi.as_view(), name="api-model"),
]

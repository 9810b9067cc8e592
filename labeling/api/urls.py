from django.urls import path

from labeling.api import views_accounts, views_export, views_feedback, views_labels, views_projects, views_quality

urlpatterns = [
    path("auth/token", views_accounts.TokenApi.as_view(), name="api-token"),
    path("auth/tokens", views_accounts.TokenRevokeAllApi.as_view(), name="api-tokens"),
    path("users", views_accounts.UserCreateApi.as_view(), name="api-users"),
    path("users/<str:username>/tokens", views_accounts.UserTokensApi.as_view(), name="api-user-tokens"),
    path(
        "users/<str:username>/tokens/<int:token_id>", views_accounts.UserTokenDeleteApi.as_view(), name="api-user-token"
    ),
    path("me", views_accounts.MeApi.as_view(), name="api-me"),
    path("projects", views_projects.ProjectListCreateApi.as_view(), name="api-projects"),
    path("projects/<int:project_id>", views_projects.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<int:project_id>/members", views_projects.MemberListCreateApi.as_view(), name="api-members"),
    path(
        "projects/<int:project_id>/members/<str:username>", views_projects.MemberDeleteApi.as_view(), name="api-member"
    ),
    path("projects/<int:project_id>/items", views_projects.ItemListIngestApi.as_view(), name="api-items"),
    # GET: the label history (an export view); POST: add a label.
    path("projects/<int:project_id>/labels", views_labels.LabelsApi.as_view(), name="api-labels"),
    path("projects/<int:project_id>/exports", views_export.ProjectExportsApi.as_view(), name="api-project-exports"),
    path("exports/<int:export_id>", views_export.ExportDetailApi.as_view(), name="api-export"),
    path("exports/<int:export_id>/download", views_export.ExportDownloadApi.as_view(), name="api-export-download"),
    path("projects/<int:project_id>/export-grants", views_export.ExportGrantsApi.as_view(), name="api-export-grants"),
    path(
        "projects/<int:project_id>/export-grants/<str:username>",
        views_export.ExportGrantDeleteApi.as_view(),
        name="api-export-grant",
    ),
]
urlpatterns += [
    path(
        "projects/<int:project_id>/ground-truth", views_feedback.GroundTruthImportApi.as_view(), name="api-ground-truth"
    ),
    path(
        "projects/<int:project_id>/feedback-delay", views_feedback.FeedbackDelayApi.as_view(), name="api-feedback-delay"
    ),
]

from labeling.api import views_queue  # noqa: E402

urlpatterns += [
    path("projects/<int:project_id>/queue/next", views_queue.QueueNextApi.as_view(), name="api-queue-next"),
    path("assignments/<int:assignment_id>/submit", views_queue.SubmitApi.as_view(), name="api-assignment-submit"),
    path("assignments/<int:assignment_id>/skip", views_queue.SkipApi.as_view(), name="api-assignment-skip"),
    path("projects/<int:project_id>/annotations", views_queue.ProjectAnnotationsApi.as_view(), name="api-annotations"),
    path("me/stats", views_queue.MeStatsApi.as_view(), name="api-me-stats"),
    path(
        "projects/<int:project_id>/quality-runs",
        views_quality.QualityRunListCreateApi.as_view(),
        name="api-quality-runs",
    ),
    path("quality-runs/<int:run_id>", views_quality.QualityRunDetailApi.as_view(), name="api-quality-run"),
    path("quality-runs/<int:run_id>/items", views_quality.QualityRunItemsApi.as_view(), name="api-quality-run-items"),
    path(
        "projects/<int:project_id>/quality-settings",
        views_quality.QualitySettingsApi.as_view(),
        name="api-quality-settings",
    ),
    path("projects/<int:project_id>/review/next", views_quality.ReviewNextApi.as_view(), name="api-review-next"),
    path("items/<int:item_id>/review/skip", views_quality.ReviewSkipApi.as_view(), name="api-review-skip"),
    path("items/<int:item_id>/resolve", views_quality.ItemResolveApi.as_view(), name="api-item-resolve"),
    path("items/<int:item_id>/resolve/undo", views_quality.ItemResolveUndoApi.as_view(), name="api-item-resolve-undo"),
    path("projects/<int:project_id>/annotators", views_quality.AnnotatorListApi.as_view(), name="api-annotators"),
    path("projects/<int:project_id>/agreement", views_quality.AgreementApi.as_view(), name="api-agreement"),
]

from labeling.api import views_imports  # noqa: E402

urlpatterns += [
    path("projects/<int:project_id>/imports", views_imports.ProjectImportsApi.as_view(), name="api-project-imports"),
    path("imports/<int:import_id>", views_imports.ImportDetailApi.as_view(), name="api-import"),
    path("imports/<int:import_id>/start", views_imports.ImportStartApi.as_view(), name="api-import-start"),
    path("imports/<int:import_id>/rejected.csv", views_imports.ImportRejectedApi.as_view(), name="api-import-rejected"),
]

from labeling.api import views_items_explorer  # noqa: E402

urlpatterns += [
    path("projects/<int:project_id>/items/bulk", views_items_explorer.ItemsBulkApi.as_view(), name="api-items-bulk"),
]

# Label set changes (views_labels).
urlpatterns += [
    path("projects/<int:project_id>/labels/<str:key>", views_labels.LabelDetailApi.as_view(), name="api-label"),
    path(
        "projects/<int:project_id>/labels/<str:key>/retire",
        views_labels.LabelRetireApi.as_view(),
        name="api-label-retire",
    ),
    path(
        "projects/<int:project_id>/labels/<str:key>/restore",
        views_labels.LabelRestoreApi.as_view(),
        name="api-label-restore",
    ),
    path(
        "projects/<int:project_id>/labels/<str:key>/merge", views_labels.LabelMergeApi.as_view(), name="api-label-merge"
    ),
]

from labeling.api import views_answers  # noqa: E402

urlpatterns += [
    path("projects/<int:project_id>/my-answers", views_answers.MyAnswersApi.as_view(), name="api-my-answers"),
    path("projects/<int:project_id>/my-remaining", views_answers.MyRemainingApi.as_view(), name="api-my-remaining"),
    path("annotations/<int:annotation_id>/edit", views_answers.AnnotationEditApi.as_view(), name="api-annotation-edit"),
]

# Comments on items and the caller's mentions (views_comments).
from labeling.api import views_comments  # noqa: E402

urlpatterns += [
    path("items/<int:item_id>/comments", views_comments.ItemCommentsApi.as_view(), name="api-item-comments"),
    path("comments/<int:comment_id>", views_comments.CommentDetailApi.as_view(), name="api-comment"),
    path("me/mentions", views_comments.MyMentionsApi.as_view(), name="api-me-mentions"),
]

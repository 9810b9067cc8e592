"""Merging bugs and undoing it over HTTP (managers): thin views over bugqueue.services.merge."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from bugqueue.api.serializers import (
    BugOutput,
)
from bugqueue.api.views_bugs import _reject_unknown
from bugqueue.selectors.bugs import (
    access_bug,
)
from bugqueue.services.merge import MAX_MERGE_SOURCES, bug_unmerge, bugs_merge
from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from labeling.selectors.access import MANAGER_ROLES


class BugMergeApi(ApiView):
    class Input(inputs.Input):
        into = serializers.IntegerField(help_text="The bug that receives the others (open).", **inputs.ID)
        bugs = serializers.ListField(
            child=serializers.IntegerField(**inputs.ID),
            min_length=1,
            max_length=MAX_MERGE_SOURCES,
            help_text="The bugs merged into it (same project).",
        )

    class Output(serializers.Serializer):
        into = serializers.IntegerField()
        merged = serializers.ListField(child=serializers.IntegerField())

    @extend_schema(
        request=Input,
        responses={200: Output, 400: ErrorSerializer, 409: ErrorSerializer, **ERRORS},
        operation_id="bugs_merge",
        description="Merge bugs into one (as Sentry's merge): their failures and occurrences move to `into`, their "
        "tags join it, and each merged bug becomes a duplicate of it; later reports with a merged bug's "
        "fingerprint land in `into`. Both sides' history records it; POST /api/bugs/{id}/unmerge undoes it. "
        "Needs the manager role. 400: bugs of another project (or unknown); 409 `merge_into_self`, "
        "`merge_into_closed` (reopen it first), `already_duplicate`. Nothing changes on an error.",
    )
    def post(self, request):
        _reject_unknown(request.data, self.Input._declared_fields)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        target = access_bug(user=request.user, bug_id=data.validated_data["into"], roles=MANAGER_ROLES)
        result = bugs_merge(target=target, bugs=data.validated_data["bugs"], actor=request.user)
        return Response({"into": result.target.pk, "merged": result.merged})


class BugUnmergeApi(ApiView):
    @extend_schema(
        request=None,
        responses={200: BugOutput, 409: ErrorSerializer, **ERRORS},
        operation_id="bugs_unmerge",
        description="Undo the merge of this bug into another: the failures and occurrences it brought move back, "
        "the tags it brought leave the other bug, and it gets back its earlier status. Needs the manager role. "
        "409 `not_merged`; `target_merged` (the other bug was merged since: unmerge it first); "
        "`fingerprint_open` (another open bug has this bug's fingerprint).",
    )
    def post(self, request, bug_id):
        bug = access_bug(user=request.user, bug_id=bug_id, roles=MANAGER_ROLES)
        return Response(BugOutput(bug_unmerge(bug=bug, actor=request.user)).data)

"""POST /api/bugs with a JSON array: how each report is checked before the batch service files them
(all or nothing), and the batch's answer (one result per report, in order)."""

from rest_framework import serializers, status
from rest_framework.response import Response

from bugqueue.services.report_batch import MAX_REPORTS_PER_BATCH, BatchReport, bug_report_batch
from common.api.errors import _first_message, _flatten
from common.errors import DomainError, TooLarge, ValidationFailed
from labeling.selectors.access import MANAGER_ROLES, access_project


class BatchResult(serializers.Serializer):
    index = serializers.IntegerField(help_text="The report's position in the batch.")
    id = serializers.IntegerField(help_text="The bug the report was filed into.")
    created = serializers.BooleanField(help_text="This report opened the bug.")
    occurrences = serializers.IntegerField(help_text="The bug's occurrences after the batch.")
    regressed = serializers.BooleanField(help_text="This report reopened a resolved bug.")
    status = serializers.CharField()


class BatchCounts(serializers.Serializer):
    created = serializers.IntegerField(help_text="Reports that opened a bug.")
    grouped = serializers.IntegerField(help_text="Reports added to an existing bug.")


class BatchOutput(serializers.Serializer):
    results = BatchResult(many=True)
    counts = BatchCounts()


def _reject_unknown(data, allowed):
    if not isinstance(data, dict):
        raise ValidationFailed("A report must be a JSON object.")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationFailed(
            f"Unknown fields: {', '.join(unknown)}.", fields={k: ["Unknown field."] for k in unknown}
        )


def report_batch_answer(request, *, rows: list, input_serializer):
    """Answer a batch of reports: each checked by `input_serializer` and the project's access,
    then filed by the batch service; one result per report, in order."""
    if len(rows) > MAX_REPORTS_PER_BATCH:
        raise TooLarge(f"A batch carries at most {MAX_REPORTS_PER_BATCH} reports; this one has {len(rows):,}.")
    projects: dict = {}
    reports = []
    checker = input_serializer()  # one instance for every row: its fields are built once, as many=True does
    for raw in rows:
        try:
            _reject_unknown(raw, input_serializer._declared_fields)
            try:
                values = dict(checker.run_validation(raw))
            except serializers.ValidationError as exc:
                fields = _flatten(exc.detail)
                if isinstance(fields, list):
                    fields = {"non_field_errors": fields}
                raise ValidationFailed(_first_message(fields) or "Invalid input.", fields=fields)
            project_id = values.pop("project")
            values.pop("failures", None)
            if project_id not in projects:
                try:
                    projects[project_id] = access_project(user=request.user, project_id=project_id)
                except DomainError as exc:
                    projects[project_id] = exc
            project = projects[project_id]
            if isinstance(project, DomainError):
                raise project
            reports.append(
                BatchReport(
                    project=project,
                    fields=values,
                    failures=raw.get("failures"),
                    may_add_items=project.user_role in MANAGER_ROLES,
                )
            )
        except DomainError as exc:
            reports.append(exc)
    outcomes = bug_report_batch(reporter=request.user, reports=reports)
    results, counts = [], {"created": 0, "grouped": 0}
    for i, outcome in enumerate(outcomes):
        results.append(
            {
                "index": i,
                "id": outcome.bug.pk,
                "created": outcome.created,
                "occurrences": outcome.occurrences,
                "regressed": outcome.regressed,
                "status": outcome.bug.status,
            }
        )
        counts["created" if outcome.created else "grouped"] += 1
    return Response({"results": results, "counts": counts}, status=status.HTTP_200_OK)

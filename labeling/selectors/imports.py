"""Reads of file imports: the permission-checked job accessor and a project's recent imports.
Imports are the managers' business, as item ingestion is."""

from common.errors import NotFound
from labeling.models import ImportJob, Project
from labeling.selectors.access import MANAGER_ROLES, access_project


def access_import(*, user, import_id) -> ImportJob:
    """The import job if `user` manages its project; NotFound / Forbidden otherwise (as access_project)."""
    try:
        import_id = int(import_id)
    except (TypeError, ValueError):
        raise NotFound("Import not found.")
    job = ImportJob.objects.filter(pk=import_id).first() if 0 < import_id < 2**63 else None
    if job is None:
        raise NotFound("Import not found.")
    try:
        job.project = access_project(user=user, project_id=job.project_id, roles=MANAGER_ROLES)
    except NotFound:
        raise NotFound("Import not found.")
    return job


def import_list(*, project: Project):
    return ImportJob.objects.filter(project=project).order_by("-id")

from django.db import transaction

from labeling.models import HealthCheck


@transaction.atomic
def health_record(*, token: str) -> HealthCheck:
    check, _ = HealthCheck.objects.get_or_create(token=token)
    return check

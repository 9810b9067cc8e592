"""A database that dropped the connection (restarted, failed over, a backend terminated) or that
aborted a transaction to break a conflict is a temporary condition, not a bug: the request answers
503 with Retry-After, in the API's error shape under /api/ and as a short page elsewhere, instead
of a 500. Django closes the broken connection when the request ends; the next one reconnects.
Nothing was written: the service transaction rolled back with the connection."""

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# SQLSTATE classes and codes that mean "try again": connection exceptions (08), the server shutting
# down or not yet accepting (57P01-57P03), too many connections (53300), a lock not available (55P03),
# and transactions rolled back to break a conflict (40001, 40P01).
TRANSIENT_SQLSTATES = {"57P01", "57P02", "57P03", "53300", "55P03", "40001", "40P01"}


def is_transient_db_error(exc: BaseException) -> bool:
    if isinstance(exc, InterfaceError):
        return True  # the connection is closed
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__ or exc.__context__
    if cause is None:
        return False
    if type(cause).__module__.startswith("sqlite3"):
        return "locked" in str(cause) or "busy" in str(cause)
    state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    # No SQLSTATE at all: the server never answered (connection refused, lost mid-query).
    return state is None or state.startswith("08") or state in TRANSIENT_SQLSTATES


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_transient_db_error(exception):
            return None
        logger.warning(
            "database unavailable during %s %s: %s",
            request.method,
            request.path,
            str(exception).splitlines()[0] if str(exception) else type(exception).__name__,
            exc_info=True,
        )
        retry_after = str(settings.LOUPE_DB_RETRY_AFTER_SECONDS)
        message = "The database is unavailable for a moment; nothing was saved. Try again shortly."
        if request.path.startswith("/api/"):
            response = JsonResponse({"error": {"code": "database_unavailable", "message": message}}, status=503)
        else:
            # A page that needs nothing from the database (no user, no session).
            response = HttpResponse(
                render_to_string(
                    "503.html", {"message": message, "retry_after": retry_after, "reload": request.method == "GET"}
                ),
                status=503,
            )
        response["Retry-After"] = retry_after
        return response

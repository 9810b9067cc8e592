"""Request bodies: a size limit on every one, checked before it is read, and chunked bodies read.

The limit is LOUPE_MAX_REQUEST_BYTES, or a view's larger `request_body_limit` (a BodyLimit); over it
answers 413, judged by Content-Length, or while a chunked body streams in. A chunked body has no
Content-Length, so Django would read it as empty: where the server decoded it (`wsgi.input_terminated`)
it is spooled here up to the limit; where it did not (runserver) the request is refused with 411.
Query strings and form bodies carrying a NUL (%00) are refused; JSON bodies are checked where parsed
(common.api.json_body)."""

import tempfile
from dataclasses import dataclass

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import JsonResponse

READ_BLOCK = 64 * 1024
SPOOL_IN_MEMORY = 1024 * 1024  # a chunked body larger than this waits on disk, not in the worker's memory


@dataclass(frozen=True)
class BodyLimit:
    """How large a view's request body may be: `setting` names a Django setting (read at request
    time), else `max_bytes`, else LOUPE_MAX_REQUEST_BYTES."""

    setting: str | None = None
    max_bytes: int | None = None
    what: str = "A request body"
    hint: str = ""

    def bytes(self) -> int:
        if self.setting:
            return getattr(settings, self.setting)
        return self.max_bytes or settings.LOUPE_MAX_REQUEST_BYTES

    def message(self) -> str:
        limit = self.bytes()
        size = f"{limit / 2**20:g} MB ({limit:,} bytes)" if limit >= 2**20 else f"{limit:,} bytes"
        return " ".join(filter(None, [f"{self.what} holds at most {size}.", self.hint]))


DEFAULT = BodyLimit()
BATCH = BodyLimit(setting="LOUPE_MAX_BATCH_BYTES", what="A batch body", hint="Split it.")


def _error(status: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    body = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    return JsonResponse(body, status=status)


def _nul_fields(query: str) -> dict:
    """The query parameters whose name or value holds a NUL, each with its message."""
    from urllib.parse import parse_qsl

    pairs = parse_qsl(query, keep_blank_values=True)
    return {(k.replace("\0", "") or "?"): ["A NUL character (%00) is not text."] for k, v in pairs if "\0" in k + v}


def view_body_limit(view_func) -> BodyLimit:
    return getattr(getattr(view_func, "view_class", view_func), "request_body_limit", None) or DEFAULT


class RequestBodyMiddleware:
    """Runs before anything reads the body (it stands before CsrfViewMiddleware, which may)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        meta = request.META
        if "%00" in meta.get("QUERY_STRING", ""):
            return _error(
                400,
                "invalid",
                "The query string holds a NUL character (%00), which is not text.",
                fields=_nul_fields(meta["QUERY_STRING"]),
            )
        limit = view_body_limit(view_func)
        if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
            if not meta.get("wsgi.input_terminated"):
                return _error(
                    411,
                    "length_required",
                    "Send the body with a Content-Length: this server cannot read chunked request bodies.",
                )
            refused = self._read_chunked(request, limit)
            if refused:
                return refused
        elif raw := meta.get("CONTENT_LENGTH"):
            try:
                length = int(raw)
            except ValueError:
                length = -1
            if length < 0:
                return _error(400, "invalid", "Content-Length must be a number of bytes.")
            if length > limit.bytes():
                return _error(413, "too_large", limit.message())
        if request.content_type == "application/x-www-form-urlencoded" and (
            b"%00" in request.body or b"\0" in request.body
        ):
            return _error(400, "invalid", "The form holds a NUL character (%00), which is not text.")
        return None

    @staticmethod
    def _read_chunked(request, limit: BodyLimit):
        """Read the decoded body into a spooled file (413 past the limit); Django reads it from there."""
        source, most = request.META["wsgi.input"], limit.bytes()
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (Django reads it later)
        size = 0
        while True:
            block = source.read(min(READ_BLOCK, most + 1 - size))
            if not block:
                break
            size += len(block)
            if size > most:
                spool.close()
                return _error(413, "too_large", limit.message())
            spool.write(block)
        spool.seek(0)
        request.META["CONTENT_LENGTH"] = str(size)
        request._stream = LimitedStream(spool, size)
        return None

"""What both apps share, and nothing of either app's domain (common never imports labeling or bugqueue).

- errors.py      domain errors (NotFound, Forbidden, Conflict, ValidationFailed, TooLarge) that
                 services and selectors raise; the API turns each into the one error shape.
- timestamps.py  the one reader for times that come from outside: ISO 8601, naive meaning UTC, 1970..2100.
- api/           the API's machinery: ApiView and the Input base, the error shape and its handlers,
                 pagination, content negotiation, JSON bodies and NDJSON batches, the schema class.
- http/          request-level middleware: body limits (413/411) and the database-unavailable 503.
"""

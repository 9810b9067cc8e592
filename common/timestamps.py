"""Times that come from outside (ingestion, ground truth, bug failures, query parameters) are read
here, in one way: ISO 8601, naive meaning UTC, and inside the range Loupe stores and computes with,
1970-01-01T00:00:00Z (included) to 2100-01-01T00:00:00Z (excluded).

Outside that range a time is a mistake (a zeroed date, a unit mix-up), and some such times cannot
even be handled: "0001-01-01T00:00:00+12:00" is a year-0 instant in UTC, which PostgreSQL stores as
a BC timestamp that Python cannot read back."""

from datetime import UTC, date, datetime

from django.utils.dateparse import parse_datetime

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
RANGE_TEXT = "from 1970-01-01 to 2100-01-01 (UTC)"


class OutOfRange(ValueError):
    """A well-formed time outside the range."""


def parse_timestamp(value, *, field: str) -> datetime:
    """ISO 8601 string -> aware datetime in the range. Raises ValueError with a reason."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an ISO 8601 date-time string.")
    try:
        parsed = datetime.fromisoformat(value)  # fast C path (Python 3.11 reads "Z" and most ISO 8601 forms)
    except ValueError:
        parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"{field} is not a valid ISO 8601 date-time: {value[:40]!r}.")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return check_timestamp(parsed, field=field)


def check_timestamp(moment: datetime, *, field: str) -> datetime:
    """An aware datetime in the range, else OutOfRange (a ValueError)."""
    try:
        inside = EARLIEST <= moment < LATEST
    except OverflowError:  # an offset that moves it past year 1 or 9999
        inside = False
    if not inside:
        raise OutOfRange(f"{field} must be {RANGE_TEXT}; got {moment.isoformat()[:40]}.")
    return moment


def check_day(day: date, *, field: str) -> date:
    """A calendar day (UTC) in the range, else OutOfRange (a ValueError)."""
    if not EARLIEST.date() <= day < LATEST.date():
        raise OutOfRange(f"{field} must be {RANGE_TEXT}; got {day.isoformat()}.")
    return day

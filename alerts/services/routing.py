"""Matching events against alert rules (being written)."""


def event_route(*, event_id: int) -> None:
    raise NotImplementedError

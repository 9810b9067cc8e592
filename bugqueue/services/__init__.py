"""Bug-queue services: everything that changes state (see STYLE.md)."""

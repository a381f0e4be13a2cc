from __future__ import annotations


class DomainError(Exception):
    """A rule the caller broke. The API answers 400 with `message`; views show it as a form error."""

    def __init__(self, message: str, *, field: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}

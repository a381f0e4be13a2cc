"""The result of one delivery attempt, as the rest of mailops sees it.

Transports produce an Outcome per recipient, the dispatcher acts on it, and the
bounce intake maps DSN statuses onto the same categories, so every layer agrees
on what "hard", "policy" or "server" means.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """What happened to the message."""

    ACCEPTED = "accepted"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    UNKNOWN = "unknown"


class Category(StrEnum):
    """Why it happened, which decides who pays for it: recipient, server or nobody."""

    NONE = ""  # accepted
    HARD = "hard"  # 5.1.x address does not exist -> suppress recipient
    SOFT = "soft"  # temporary (4.x.x, x.2.2 mailbox full) -> retry later
    POLICY = "policy"  # 5.7.x, 421, 4.7.x, a blocklist -> counts against the SERVER, never the recipient
    SERVER = "server"  # connect/TLS/auth failures, dropped connections -> fail over to another server
    PERMANENT = "permanent"  # other 5xx (message too big, content rejected...) -> failed, no suppression
    UNKNOWN = "unknown"  # reply lost after DATA: the message may or may not have been taken


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    category: Category
    code: int | None
    enhanced: str
    text: str
    retry_after: float | None = None  # seconds, e.g. from SendGrid X-RateLimit-Reset

    @property
    def accepted(self) -> bool:
        return self.status is Status.ACCEPTED

    @property
    def deferred(self) -> bool:
        return self.status is Status.DEFERRED

    @property
    def bounced(self) -> bool:
        return self.status is Status.BOUNCED

    @property
    def is_failover(self) -> bool:
        # 421 means "this connection is closing": whatever the reason, the
        # message has not been judged and another server may take it.
        return self.category is Category.SERVER or self.code == 421

    @property
    def suppresses_recipient(self) -> bool:
        return self.category is Category.HARD

    @property
    def counts_against_server(self) -> bool:
        return self.category in (Category.POLICY, Category.SERVER)

    @property
    def summary(self) -> str:
        """One line for logs and the dashboard: "550 5.1.1 No such user"."""
        parts = [str(self.code) if self.code is not None else "", self.enhanced, " ".join(self.text.split())]
        return " ".join(p for p in parts if p)

    def with_retry_after(self, seconds: float | None) -> Outcome:
        return dataclasses.replace(self, retry_after=seconds)

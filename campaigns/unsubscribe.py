"""Signed one-click unsubscribe tokens and the URL/mailto forms that carry them.

A token is ``<base64 JSON>.<base64 HMAC>`` made with django.core.signing. The separator
is "." rather than signing's default ":" so the same token is valid both in a URL path
segment and as a dot-atom local part in the ``mailto:u-<token>@...`` address. Tokens do
not expire: an unsubscribe link must keep working for as long as the mail sits in an
inbox.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.core import signing

SALT = "mailops.unsubscribe"
MAILTO_PREFIX = "u-"


@dataclass(frozen=True, slots=True)
class UnsubscribeClaim:
    email: str
    message_id: int | None
    campaign_id: int | None


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT, sep=".", algorithm="sha256")


def _optional_id(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def make_token(*, email: str, message_id: int | None, campaign_id: int | None) -> str:
    if not isinstance(email, str) or "@" not in email:
        raise ValueError(f"unsubscribe token needs an email address, not {email!r}")
    if not (_optional_id(message_id) and _optional_id(campaign_id)):
        raise ValueError("message_id and campaign_id must be non-negative ints or None")
    # A list, not a dict, keeps the token (and so the mailto local part) short.
    # compress=False always: a compressed payload starts with "." which would clash with sep.
    return _signer().sign_object([email, message_id, campaign_id], compress=False)


def read_token(token: str) -> UnsubscribeClaim | None:
    """The claim inside a token, or None when it is forged, truncated or garbled."""
    if not isinstance(token, str) or not token or len(token) > 2000:
        return None
    try:
        payload = _signer().unsign_object(token)
    except (signing.BadSignature, ValueError, binascii.Error, UnicodeError, json.JSONDecodeError):
        return None
    if not (isinstance(payload, list) and len(payload) == 3):
        return None
    email, message_id, campaign_id = payload
    if not (isinstance(email, str) and "@" in email and _optional_id(message_id) and _optional_id(campaign_id)):
        return None
    return UnsubscribeClaim(email=email, message_id=message_id, campaign_id=campaign_id)


def unsubscribe_url(token: str) -> str:
    base = settings.MAILOPS["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/u/{quote(token, safe='')}/"


def unsubscribe_mailto(token: str) -> str:
    domain = settings.MAILOPS["UNSUBSCRIBE_MAILTO_DOMAIN"]
    return f"mailto:{MAILTO_PREFIX}{token}@{domain}?subject=unsubscribe"


def token_from_mailto_address(address: str) -> str | None:
    """The token in an inbound ``u-<token>@UNSUBSCRIBE_MAILTO_DOMAIN`` recipient, for the mail handler."""
    local, at, _domain = address.strip().strip("<>").rpartition("@")
    if not at or not local.startswith(MAILTO_PREFIX):
        return None
    return local[len(MAILTO_PREFIX):] or None

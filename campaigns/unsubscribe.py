"""Signed one-click unsubscribe tokens and the URL/mailto forms that carry them.

The one-click URL carries a token, ``<base64 JSON>.<base64 HMAC>`` made with
django.core.signing, naming the address itself. Tokens do not expire: an unsubscribe
link must keep working for as long as the mail sits in an inbox.

The mailto address cannot carry that token: it is over 100 characters, past RFC 5321's
64-octet limit for a local part, and its base64 is case-sensitive while some MTAs change
the case of local parts. So, like the VERP return path (campaigns/headers.py), it names
the message and carries an 80-bit HMAC in lower-case base32: ``u-<message id>-<mac>``,
at most 39 characters. The MAC covers the recipient's address too, so an address made
for one message never unsubscribes whoever a reused message id might later belong to.
Mail sent before this form carries ``u-<token>``, which is still read.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.utils.crypto import salted_hmac

SALT = "mailops.unsubscribe"
MAILTO_SALT = "mailops.unsubscribe.mailto"
MAILTO_PREFIX = "u-"
_MAILTO_LOCAL = re.compile(r"u-(\d{1,20})-([a-z2-7]{16})\Z")


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
    # A list, not a dict, keeps the token short.
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


def _mailto_mac(message_id: int, email: str, secret: str) -> str:
    value = f"{message_id}:{email.strip().lower()}"
    digest = salted_hmac(MAILTO_SALT, value, secret=secret, algorithm="sha256").digest()
    return base64.b32encode(digest[:10]).decode("ascii").lower()


def unsubscribe_mailto(*, message_id: int, email: str) -> str:
    """The List-Unsubscribe mailto URI for one message to `email`."""
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 0:
        raise ValueError(f"message_id must be a non-negative int, not {message_id!r}")
    domain = settings.MAILOPS["UNSUBSCRIBE_MAILTO_DOMAIN"]
    mac = _mailto_mac(message_id, email, settings.SECRET_KEY)
    return f"mailto:{MAILTO_PREFIX}{message_id}-{mac}@{domain}?subject=unsubscribe"


@dataclass(frozen=True, slots=True)
class MailtoClaim:
    """What an inbound ``u-<id>-<mac>@…`` address claims; `is_for` checks it against the message's recipient."""

    message_id: int
    mac: str

    def is_for(self, email: str) -> bool:
        # Old SECRET_KEY_FALLBACKS too: an unsubscribe may come months after sending.
        return any(
            hmac.compare_digest(self.mac, _mailto_mac(self.message_id, email, secret))
            for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
        )


def read_mailto_address(address: str) -> MailtoClaim | None:
    """The claim in an inbound ``u-<id>-<mac>@UNSUBSCRIBE_MAILTO_DOMAIN`` recipient, in any letter case."""
    if not isinstance(address, str):
        return None
    local, at, _domain = address.strip().strip("<>").lower().rpartition("@")
    match = _MAILTO_LOCAL.match(local) if at else None
    if match is None:
        return None
    return MailtoClaim(message_id=int(match.group(1)), mac=match.group(2))


def token_from_mailto_address(address: str) -> str | None:
    """The signed token in a ``u-<token>@…`` recipient, the form mail sent before the short one carries."""
    local, at, _domain = address.strip().strip("<>").rpartition("@")
    if not at or not local.startswith(MAILTO_PREFIX):
        return None
    return local[len(MAILTO_PREFIX):] or None

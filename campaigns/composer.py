"""Message rows → OutgoingMessages, ready for a transport.

A campaign's templates are compiled once per process and campaign version (a cache
keyed by the campaign id and a digest of every field that shapes the message), so a
batch costs one cheap substitution per recipient. A single send compiles its own
payload. Each message gets its unsubscribe token, VERP return path and, when
configured for the From domain, a DKIM signature.

A message keeps one Message-ID for life: a retry after a deferral re-uses the one it
was first given, so bounces and webhook events for any attempt match the same row.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from servers.transports.base import OutgoingMessage

from . import bulkwrite
from .dkim import DkimSigner, signer_from_settings
from .headers import HeaderInjection, InvalidAddress
from .models import Campaign, Message, MessageStatus, Prospect
from .rendering import CompiledMessage, InvalidMessage, RecipientRefused, RenderedMessage
from .unsubscribe import make_token

# Custom arg carried through SendGrid into its event webhooks, next to the Message-ID.
MESSAGE_PK_ARG = "mailops_message"
CACHE_SIZE = 64


@dataclass(frozen=True, slots=True)
class Composed:
    """A message and what to send, or why it cannot be sent (`refused`)."""

    message: Message
    outgoing: OutgoingMessage | None
    refused: str = ""


class _Compiled:
    """A small LRU of compiled campaigns, shared by the threads of one process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[int, str], CompiledMessage | str] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, campaign: Campaign) -> CompiledMessage | str:
        key = (campaign.pk, campaign_version(campaign))
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return found
        try:
            compiled: CompiledMessage | str = CompiledMessage.compile(
                subject=campaign.subject,
                html=campaign.html_body,
                text=campaign.text_body,
                from_email=campaign.from_email,
                from_name=campaign.from_name,
                reply_to=campaign.reply_to or None,
                list_unsubscribe=True,
            )
        except (InvalidMessage, HeaderInjection, InvalidAddress) as exc:
            # Cached too, so a broken campaign fails its batch quickly and the same way each time.
            compiled = f"campaign {campaign.name!r} cannot be built: {exc}"
        with self.lock:
            self.entries[key] = compiled
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


_campaigns = _Compiled(CACHE_SIZE)


def campaign_version(campaign: Campaign) -> str:
    """A digest of everything that changes the message, so an edited campaign is recompiled."""
    mailops = settings.MAILOPS
    parts = (
        campaign.subject, campaign.html_body, campaign.text_body, campaign.from_email, campaign.from_name,
        campaign.reply_to, mailops["POSTAL_ADDRESS"], mailops["BOUNCE_DOMAIN"],
    )
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=12).hexdigest()


def clear_cache() -> None:
    _campaigns.clear()


_signers: dict[tuple[str, ...], DkimSigner | None] = {}


def _signer(from_email: str) -> DkimSigner | None:
    mailops = settings.MAILOPS
    domain = from_email.rpartition("@")[2].lower()
    key = (domain, mailops.get("SENDER_DOMAIN", ""), mailops.get("DKIM_SELECTOR", ""), mailops.get("DKIM_PRIVATE_KEY_FILE", ""))
    if key not in _signers:
        _signers[key] = signer_from_settings(domain)
    return _signers[key]


def _keep_message_id(rendered: RenderedMessage, message_id: str) -> RenderedMessage:
    """Swap the freshly made Message-ID for the one this message already has."""
    if not message_id or message_id == rendered.message_id:
        return rendered
    old = b"Message-ID: " + rendered.message_id.encode("ascii")
    new = b"Message-ID: " + message_id.encode("ascii")
    data = rendered.data.replace(old, new, 1)
    headers = {**rendered.headers, "Message-ID": message_id}
    return RenderedMessage(
        message_id=message_id, envelope_from=rendered.envelope_from, recipient=rendered.recipient, data=data,
        subject=rendered.subject, html=rendered.html, text=rendered.text, headers=headers,
    )


def _outgoing(message: Message, rendered: RenderedMessage, *, from_email: str, from_name: str, reply_to: str) -> OutgoingMessage:
    rendered = _keep_message_id(rendered, message.message_id)
    data = rendered.data
    signer = _signer(from_email)
    if signer is not None:
        data = signer.sign(data)
    message.message_id = rendered.message_id
    return OutgoingMessage(
        message_id=rendered.message_id,
        envelope_from=rendered.envelope_from,
        recipient=rendered.recipient,
        data=data,
        from_email=from_email,
        from_name=from_name,
        reply_to=reply_to,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        custom_args={MESSAGE_PK_ARG: str(message.pk)},
    )


def _recipient(message: Message, prospect: Prospect | None) -> dict[str, Any]:
    if prospect is None:
        return {"email": message.to_email, "name": message.to_name, "company": "", "country": "", "custom": {}}
    return {
        "email": message.to_email,
        "name": prospect.name or message.to_name,
        "company": prospect.company,
        "country": prospect.country,
        "custom": prospect.custom or {},
    }


def compile_payload(payload: Mapping[str, Any]) -> CompiledMessage:
    """A single send's message; raises InvalidMessage, HeaderInjection or InvalidAddress."""
    return CompiledMessage.compile(
        subject=payload.get("subject", ""),
        html=payload.get("html", "") or "",
        text=payload.get("text", "") or "",
        from_email=payload.get("from_email") or settings.DEFAULT_FROM_EMAIL,
        from_name=payload.get("from_name", "") or "",
        reply_to=payload.get("reply_to") or None,
        headers=payload.get("headers") or None,
        list_unsubscribe=bool(payload.get("list_unsubscribe", False)),
    )


def _compose_single(message: Message) -> Composed:
    payload = message.payload or {}
    try:
        compiled = compile_payload(payload)
        rendered = compiled.render(
            {"email": message.to_email, "name": message.to_name},
            message_pk=message.pk,
            unsubscribe_token=make_token(email=message.to_email, message_id=message.pk, campaign_id=None)
            if compiled.list_unsubscribe
            else None,
        )
    except RecipientRefused as exc:
        return Composed(message, None, exc.reason)
    except (InvalidMessage, HeaderInjection, InvalidAddress) as exc:
        return Composed(message, None, str(exc))
    from_email = payload.get("from_email") or settings.DEFAULT_FROM_EMAIL
    return Composed(
        message,
        _outgoing(
            message, rendered, from_email=from_email, from_name=payload.get("from_name", "") or "",
            reply_to=payload.get("reply_to") or "",
        ),
    )


def compose(messages: Sequence[Message]) -> list[Composed]:
    """Build every message of a batch, in order: two queries (campaigns, prospects) whatever its size."""
    campaign_ids = {m.campaign_id for m in messages if m.campaign_id}
    prospect_ids = {m.prospect_id for m in messages if m.prospect_id}
    campaigns = Campaign.objects.in_bulk(campaign_ids) if campaign_ids else {}
    prospects = (
        Prospect.objects.only("pk", "name", "company", "country", "custom").in_bulk(prospect_ids)
        if prospect_ids
        else {}
    )
    out: list[Composed] = []
    for message in messages:
        if not message.campaign_id:
            out.append(_compose_single(message))
            continue
        campaign = campaigns.get(message.campaign_id)
        compiled = _campaigns.get(campaign) if campaign is not None else "its campaign was deleted"
        if isinstance(compiled, str):
            out.append(Composed(message, None, compiled))
            continue
        assert campaign is not None
        try:
            rendered = compiled.render(
                _recipient(message, prospects.get(message.prospect_id) if message.prospect_id else None),
                message_pk=message.pk,
                unsubscribe_token=make_token(email=message.to_email, message_id=message.pk, campaign_id=campaign.pk),
            )
        except RecipientRefused as exc:
            out.append(Composed(message, None, exc.reason))
            continue
        out.append(
            Composed(
                message,
                _outgoing(
                    message, rendered, from_email=campaign.from_email, from_name=campaign.from_name,
                    reply_to=campaign.reply_to,
                ),
            )
        )
    _store_message_ids([c.message for c in out if c.outgoing is not None])
    return out


def _store_message_ids(messages: list[Message]) -> None:
    """Write the Message-IDs before anything is sent, so a bounce or webhook that beats the
    outcome recording (or outlives a crashed worker) still finds its row."""
    fresh = [m for m in messages if m.message_id]
    if fresh:
        bulkwrite.update_rows(Message, fresh, ["message_id"], filters={"status": MessageStatus.SENDING})

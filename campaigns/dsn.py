"""Read inbound bounce and complaint reports into one shape.

Standard reports come as RFC 3464 delivery status notifications (DSNs) or
RFC 5965 abuse reports (ARF). Plenty of bounces are neither: qmail, Yahoo and old
Exim send plain text. Those are read on a best-effort basis, and marked
``standard=False`` so callers can weigh them accordingly.

Matching a report to the message it is about is the caller's job. The report
offers three handles, from most to least trustworthy: ``envelope_to`` (our VERP
return path, which carries a MAC; see campaigns.headers.parse_verp), the returned
``X-Mailops-Message`` header, and the original Message-ID. The last two are
copied from text anybody can write, so they should only ever narrow a match that
the VERP address allows, never widen it.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from typing import Literal

from servers.classify import Reply, categorize, parse_reply
from servers.outcome import Category

_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status", "message/feedback-report"})
_ORIGINAL_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_ORIGINAL_HEADER_TYPES = frozenset({"text/rfc822-headers", "message/global-headers"})

_FIELD = re.compile(r"^(?P<name>[!-9;-~]+)[ \t]*:[ \t]*(?P<value>.*)$")
_DSN_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_ADDRESS_TYPE = re.compile(r"^\s*[\w.+-]+\s*;\s*")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_STAGE_HINTS = (
    (re.compile(r"in reply to mail from|after mail from|MAIL FROM command", re.IGNORECASE), "mail"),
    (re.compile(r"in reply to rcpt to|after rcpt to|RCPT TO command", re.IGNORECASE), "rcpt"),
    (re.compile(r"end of data|after end of data|in reply to data|DATA command", re.IGNORECASE), "data"),
)

# What marks a free-text message as a bounce at all, so that ordinary replies
# and auto-responders that reach the bounce address are not read as one.
_BOUNCE_SENDER = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailer)@", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery\s+(?:status|failure|has\s+failed|notification|problem)|returned\s+mail|failure\s+notice"
    r"|mail\s+delivery\s+failed|could\s+not\s+be\s+delivered|non-?delivery|delayed\s+mail|not\s+delivered",
    re.IGNORECASE,
)
_BOUNCE_BODY = re.compile(
    r"qmail-send program|unable to deliver your message|could not be delivered to one or more"
    r"|following address\(es\) failed"
    r"|permanent fatal errors|delivery to the following recipients? failed|wasn't able to deliver your message",
    re.IGNORECASE,
)
# Where a free-text bounce starts quoting the returned message.
_ORIGINAL_MARKER = re.compile(
    r"^[ \t]*-{2,}[ \t]*(?:Below this line is a copy of the message|This is a copy of the message"
    r"|Original message|The header of the original message|Original message headers"
    r"|Original message follows|Returned message)\b.*$",
    re.IGNORECASE | re.MULTILINE,
)
# A line that is nothing but an address: how qmail, Yahoo, Exim, Sendmail and
# Gmail all list failed recipients in their prose.
_ADDRESS_LINE = re.compile(r"^[ \t]*<?(?P<address>[^\s<>@\"]+@[^\s<>@:\"]+?)>?:?[ \t]*$", re.MULTILINE)
_REPLY_START = re.compile(r"(?<![\w.\-/])[245]\d\d(?:[ -]|$)", re.MULTILINE)
_REMOTE_HOST = re.compile(
    r"\bhost\s+(?P<host>[\w.-]+\.[a-z]{2,})\b|^(?P<ip>\d{1,3}(?:\.\d{1,3}){3}) does not like",
    re.IGNORECASE | re.MULTILINE,
)
_DELAYED_WORDING = re.compile(
    r"not yet been delivered|delayed|will (?:continue|keep) trying|still being retried|temporary", re.IGNORECASE
)
_PERMANENT_WORDING = re.compile(r"permanent|given up|giving up|fatal", re.IGNORECASE)


@dataclass
class ReportRecipient:
    final_recipient: str
    original_recipient: str
    action: str
    status: str
    diagnostic_code: str
    remote_mta: str
    diagnostic_type: str = ""
    last_attempt_date: str = ""
    will_retry_until: str = ""

    @property
    def category(self) -> Category:
        return classify_dsn_status(self.status, self.diagnostic_code, action=self.action)


@dataclass
class Report:
    kind: Literal["dsn", "arf"]
    recipients: list[ReportRecipient]
    original_message_id: str
    original_headers: dict[str, str]  # keys lower-cased, values unfolded and decoded
    feedback_type: str
    envelope_to: str
    mailops_message_id: str = ""
    envelope_id: str = ""
    reporting_mta: str = ""
    arrival_date: str = ""
    user_agent: str = ""
    source_ip: str = ""
    original_mail_from: str = ""
    standard: bool = True  # False when read out of free text by heuristics
    fields: dict[str, str] = field(default_factory=dict)  # the per-message (DSN) or report (ARF) fields

    @property
    def is_complaint(self) -> bool:
        return self.kind == "arf" and self.feedback_type.lower() != "not-spam"


def parse_report(raw: bytes, *, envelope_to: str = "") -> Report | None:
    """Parse one inbound report, or None if it is not a bounce or a complaint.

    ``envelope_to`` is the RCPT TO the report arrived for, when the receiving
    side knows it; otherwise it is read from the delivery headers.
    """
    message = BytesParser(policy=compat32).parsebytes(raw)
    envelope = envelope_to.strip() or _envelope_recipient(message)
    located = _find_status_part(message)
    if located is not None:
        status_part, siblings = located
        original = _original_headers(siblings)
        groups = _field_groups(_part_text(status_part))
        if status_part.get_content_type() == "message/feedback-report":
            return _arf_report(groups, original, envelope)
        return _dsn_report(groups, original, envelope)
    return _free_text_report(message, envelope)


def classify_dsn_status(status: str, diagnostic: str, *, action: str = "") -> Category:
    """The Category of one DSN recipient, from its Status and Diagnostic-Code.

    The Status field is the reporting MTA's verdict and wins, except that a
    generic X.0.0 gives way to the remote server's own, more specific code.
    """
    if action.lower() in ("delivered", "relayed", "expanded"):
        return Category.NONE
    reply = parse_reply(diagnostic)
    match = _DSN_STATUS.match(status or "")
    enhanced = match.group(1) if match else reply.enhanced
    if match and enhanced.endswith(".0.0") and reply.enhanced[:1] == enhanced[:1]:
        enhanced = reply.enhanced
    code = reply.code
    if enhanced and (code is None or str(code)[0] != enhanced[0]):
        # No reply (a timeout, a DNS failure) or one of another class: the
        # status alone says whether it was temporary.
        code = {"2": 250, "4": 450, "5": 550}[enhanced[0]]
    if code is None:
        return Category.UNKNOWN
    stage = next((name for pattern, name in _STAGE_HINTS if pattern.search(diagnostic or "")), None)
    return categorize(Reply(code=code, enhanced=enhanced, message=reply.message), stage=stage).category


def normalize_message_id(value: str) -> str:
    """``<id@host>`` whether or not the header had the brackets; "" if empty."""
    value = " ".join((value or "").split())
    if not value:
        return ""
    found = _MESSAGE_ID.search(value)
    if found:
        return found.group(0)
    return f"<{value.split()[0].strip('<>')}>"


# --- locating the parts ---------------------------------------------------------------


def _find_status_part(message: Message) -> tuple[Message, list[Message]] | None:
    """The machine-readable part and its siblings, searched through nested multiparts.

    Returned originals (message/rfc822) are not searched: a bounce of a bounce
    must be read as the outer report, not the inner one.
    """
    if not message.is_multipart() or message.get_content_maintype() != "multipart":
        return None
    children = [part for part in message.get_payload() if isinstance(part, Message)]
    for child in children:
        if child.get_content_type() in _STATUS_TYPES:
            return child, children
    for child in children:
        found = _find_status_part(child)
        if found is not None:
            return found
    return None


def _original_headers(siblings: list[Message]) -> Message | None:
    for part in siblings:
        ctype = part.get_content_type()
        if ctype in _ORIGINAL_MESSAGE_TYPES or ctype == "message/global-headers":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if ctype in _ORIGINAL_HEADER_TYPES:
            return HeaderParser(policy=compat32).parsestr(_part_text(part))
    return None


# --- turning parts into text and fields --------------------------------------------------


def _unescape(value: str) -> str:
    """Undo compat32's surrogateescape so 8-bit UTF-8 (or Latin-1) reads as text."""
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode_bytes(data: bytes, charset: str | None) -> str:
    for candidate in (charset, "utf-8"):
        if candidate:
            try:
                return data.decode(candidate)
            except (LookupError, UnicodeDecodeError):
                continue
    return data.decode("latin-1")


def _part_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        # The parser already split delivery-status into blocks (and reads
        # other message/* types as a message): put the text back together.
        # Blocks of message/delivery-status end at a blank line, so a block
        # body is a malformed continuation; any other message/* type is one
        # message whose headers were the first group and whose body is the rest.
        separator = "" if part.get_content_type() == "message/delivery-status" else "\n"
        chunks = []
        for block in payload:
            if not isinstance(block, Message):
                continue
            lines = [f"{name}: {value}" for name, value in block.raw_items()]
            # decode=True hands back the raw bytes; without it the parser
            # replaces every 8-bit byte with U+FFFD.
            body = block.get_payload(decode=True)
            if isinstance(body, bytes) and body.strip():
                lines.append(separator + body.decode("utf-8", "surrogateescape"))
            chunks.append("\n".join(lines))
        text = "\n\n".join(chunks)
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if encoding == "base64":
            try:
                return _unescape(base64.b64decode("".join(text.split())).decode("utf-8", "surrogateescape"))
            except (binascii.Error, ValueError):
                return _unescape(text)
        if encoding == "quoted-printable":
            decoded = quopri.decodestring(text.encode("utf-8", "surrogateescape"))
            return _unescape(decoded.decode("utf-8", "surrogateescape"))
        return _unescape(text)
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return _unescape(payload) if isinstance(payload, str) else ""
    return _decode_bytes(data, part.get_content_charset())


def _field_groups(text: str) -> list[list[tuple[str, str]]]:
    """RFC 3464/5965 field groups: ``Name: value`` lines, blank-line separated.

    Lenient on purpose: a line that is neither a field nor indented continues the
    previous field, because some MTAs wrap long diagnostics without indenting.
    """
    groups: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            if current:
                groups.append(current)
                current = []
            continue
        match = None if line[0] in " \t" else _FIELD.match(line)
        if match:
            current.append((match.group("name").lower(), match.group("value").strip()))
        elif current:
            name, value = current[-1]
            current[-1] = (name, f"{value} {line.strip()}".strip())
    if current:
        groups.append(current)
    return groups


def _first(group: list[tuple[str, str]], name: str) -> str:
    return next((" ".join(value.split()) for key, value in group if key == name), "")


def _all(group: list[tuple[str, str]], name: str) -> list[str]:
    return [" ".join(value.split()) for key, value in group if key == name]


def _typed_value(value: str) -> tuple[str, str]:
    """Split an RFC 3464 typed field ("rfc822; a@b", "smtp; 550 ...") into (type, value)."""
    match = _ADDRESS_TYPE.match(value)
    if not match:
        return "", value.strip()
    return match.group(0).split(";")[0].strip().lower(), value[match.end() :].strip()


def _address(value: str) -> str:
    return _typed_value(value)[1].strip().strip("<>").strip()


def _mta(value: str) -> str:
    # Gmail writes "dns; mx.example.org. (192.0.2.25, the server for the domain ...)".
    host = _typed_value(value)[1].split()
    return host[0].rstrip(".") if host else ""


def _header_dict(headers: Message | None) -> dict[str, str]:
    result: dict[str, str] = {}
    if headers is None:
        return result
    for name, value in headers.raw_items():
        key = name.strip().lower()
        if key in result:
            continue
        text = " ".join(_unescape(str(value)).split())
        try:
            text = str(make_header(decode_header(text)))
        except (MessageError, LookupError, UnicodeError, ValueError):
            pass  # a broken encoded-word is still worth showing as sent
        result[key] = text
    return result


def _envelope_recipient(message: Message) -> str:
    for name in ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To"):
        value = message.get(name)
        if value:
            return parseaddr(_unescape(str(value)))[1] or str(value).strip()
    addresses = [address for _, address in getaddresses([_unescape(str(v)) for v in message.get_all("To", [])])]
    return next((address for address in addresses if "@" in address), "")


# --- the three kinds ----------------------------------------------------------------------


def _dsn_report(groups: list[list[tuple[str, str]]], original: Message | None, envelope: str) -> Report | None:
    per_message = groups[0] if groups and not _is_recipient_group(groups[0]) else []
    recipients = [_dsn_recipient(group) for group in groups if _is_recipient_group(group)]
    if not recipients:
        return None
    headers = _header_dict(original)
    return Report(
        kind="dsn",
        recipients=recipients,
        # Gmail's DSNs name the original in the per-message group as well.
        original_message_id=normalize_message_id(
            headers.get("message-id") or _first(per_message, "x-original-message-id")
        ),
        original_headers=headers,
        feedback_type="",
        envelope_to=envelope,
        mailops_message_id=headers.get("x-mailops-message", "").strip(),
        envelope_id=_first(per_message, "original-envelope-id"),
        reporting_mta=_mta(_first(per_message, "reporting-mta")),
        arrival_date=_first(per_message, "arrival-date"),
        fields={key: " ".join(value.split()) for key, value in reversed(per_message)},
    )


def _is_recipient_group(group: list[tuple[str, str]]) -> bool:
    return any(key in ("final-recipient", "original-recipient") for key, _ in group)


def _dsn_recipient(group: list[tuple[str, str]]) -> ReportRecipient:
    final = _address(_first(group, "final-recipient"))
    original = _address(_first(group, "original-recipient"))
    diagnostic_type, diagnostic = _typed_value(_first(group, "diagnostic-code"))
    status_match = _DSN_STATUS.match(_first(group, "status"))
    status = status_match.group(1) if status_match else parse_reply(diagnostic).enhanced
    return ReportRecipient(
        final_recipient=final or original,
        original_recipient=original,
        # Sendmail writes "relayed (to non-DSN-aware mailer)".
        action=next(iter(_first(group, "action").lower().split()), ""),
        status=status,
        diagnostic_code=diagnostic,
        remote_mta=_mta(_first(group, "remote-mta")),
        diagnostic_type=diagnostic_type,
        last_attempt_date=_first(group, "last-attempt-date"),
        will_retry_until=_first(group, "will-retry-until"),
    )


def _arf_report(groups: list[list[tuple[str, str]]], original: Message | None, envelope: str) -> Report:
    fields = [item for group in groups for item in group]
    headers = _header_dict(original)
    addresses = [_address(value) for value in _all(fields, "original-rcpt-to") + _all(fields, "removal-recipient")]
    if not addresses:
        # Providers that leave Original-Rcpt-To out (many do, for privacy)
        # usually still return the To header, or Microsoft's own copy of it.
        fallback = headers.get("x-hmxmroriginalrecipient", "") or headers.get("to", "")
        addresses = [address for _, address in getaddresses([fallback]) if "@" in address]
    unique = list(dict.fromkeys(address for address in addresses if address))
    recipients = [
        ReportRecipient(
            final_recipient=address, original_recipient=address, action="", status="", diagnostic_code="", remote_mta=""
        )
        for address in unique
    ]
    return Report(
        kind="arf",
        recipients=recipients,
        original_message_id=normalize_message_id(headers.get("message-id", "")),
        original_headers=headers,
        feedback_type=_first(fields, "feedback-type").lower(),
        envelope_to=envelope,
        mailops_message_id=headers.get("x-mailops-message", "").strip(),
        reporting_mta=_mta(_first(fields, "reporting-mta")),
        arrival_date=_first(fields, "arrival-date") or _first(fields, "received-date"),
        user_agent=_first(fields, "user-agent"),
        source_ip=_first(fields, "source-ip"),
        original_mail_from=_address(_first(fields, "original-mail-from")),
        fields={key: " ".join(value.split()) for key, value in reversed(fields)},
    )


def _free_text_report(message: Message, envelope: str) -> Report | None:
    text_parts: list[str] = []
    attached: Message | None = None
    for part in _leaf_parts(message):
        ctype = part.get_content_type()
        if ctype in _ORIGINAL_MESSAGE_TYPES or ctype in _ORIGINAL_HEADER_TYPES:
            attached = attached or _original_headers([part])
        elif ctype == "text/plain":
            text_parts.append(_part_text(part))
    text = "\n".join(text_parts).replace("\r\n", "\n")
    sender = parseaddr(_unescape(str(message.get("From", ""))))[1]
    subject = _unescape(str(message.get("Subject", "")))
    looks_like_bounce = (
        _BOUNCE_SENDER.match(sender)
        or _BOUNCE_SUBJECT.search(subject)
        or _BOUNCE_BODY.search(text)
        or message.get("X-Failed-Recipients")
    )
    if not looks_like_bounce:
        return None

    marker = _ORIGINAL_MARKER.search(text)
    notice, quoted = (text[: marker.start()], text[marker.end() :]) if marker else (text, "")
    original = attached
    if original is None and quoted.strip():
        original = HeaderParser(policy=compat32).parsestr(quoted.lstrip("\n"))
    headers = _header_dict(original)

    recipients = _free_text_recipients(notice)
    if not recipients:
        failed = str(message.get("X-Failed-Recipients", ""))
        recipients = [
            _free_text_recipient(address, notice) for _, address in getaddresses([failed]) if "@" in address
        ]
    if not recipients:
        return None
    return Report(
        kind="dsn",
        recipients=recipients,
        original_message_id=normalize_message_id(headers.get("message-id", "")),
        original_headers=headers,
        feedback_type="",
        envelope_to=envelope,
        mailops_message_id=headers.get("x-mailops-message", "").strip(),
        standard=False,
    )


def _leaf_parts(message: Message) -> list[Message]:
    if message.get_content_maintype() == "multipart" and message.is_multipart():
        return [leaf for part in message.get_payload() if isinstance(part, Message) for leaf in _leaf_parts(part)]
    return [message]


def _free_text_recipients(notice: str) -> list[ReportRecipient]:
    matches = list(_ADDRESS_LINE.finditer(notice))
    recipients: dict[str, ReportRecipient] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(notice)
        address = match.group("address")
        if address.lower() not in recipients:
            recipients[address.lower()] = _free_text_recipient(address, notice[match.end() : end], whole=notice)
    return list(recipients.values())


def _free_text_recipient(address: str, segment: str, *, whole: str = "") -> ReportRecipient:
    diagnostic = ""
    start = _REPLY_START.search(segment)
    if start:
        paragraph = re.split(r"\n[ \t]*\n", segment[start.start() :], maxsplit=1)[0]
        lines = [line for line in paragraph.splitlines() if not line.strip().lower().startswith("giving up")]
        diagnostic = " ".join(" ".join(lines).split())
    reply = parse_reply(diagnostic or segment)
    status = reply.enhanced
    if not status and reply.code is not None:
        status = f"{str(reply.code)[0]}.0.0"
    context = whole or segment
    if status.startswith("4"):
        action = "delayed"
    elif status.startswith("5") or _PERMANENT_WORDING.search(context) or not _DELAYED_WORDING.search(context):
        action = "failed"
    else:
        action = "delayed"
    remote = _REMOTE_HOST.search(segment)
    return ReportRecipient(
        final_recipient=address,
        original_recipient="",
        action=action,
        status=status,
        diagnostic_code=diagnostic,
        remote_mta=(remote.group("host") or remote.group("ip")) if remote else "",
        diagnostic_type="smtp" if diagnostic else "",
    )

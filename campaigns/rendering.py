"""Campaign messages: compile once, then render each recipient by cheap substitution.

``MergeTemplate`` knows only ``{{ field }}`` and ``{{ field|default:"text" }}``. User
content never reaches a template engine, so ``{% load %}``, ``{{ settings.SECRET_KEY }}``
and friends are inert literal text.

``CompiledMessage`` does every check and every piece of encoding that does not depend on
the recipient when the campaign is compiled; ``render`` then joins pre-built ASCII
header lines, the recipient's merged headers, and quoted-printable bodies into the
final RFC 5322 bytes. Building an ``email.message.EmailMessage`` per recipient would be
an order of magnitude slower.
"""

from __future__ import annotations

import binascii
import html as htmllib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from html.parser import HTMLParser

from django.conf import settings
from django.utils import timezone

from campaigns.headers import (
    HeaderInjection,
    InvalidAddress,
    address_header,
    check_header_name,
    check_header_value,
    make_message_id,
    normalize_domain,
    normalize_email,
    unstructured_header,
    verp_return_path,
)
from campaigns.unsubscribe import unsubscribe_mailto, unsubscribe_url


class InvalidMessage(ValueError):
    """The campaign's message cannot be compiled; the text says what to fix."""


class RecipientRefused(ValueError):
    """This recipient's data cannot be rendered safely; ``reason`` is meant for the message row."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_PLACEHOLDER = re.compile(
    r"""\{\{\s*(?P<name>[A-Za-z0-9_]+)\s*"""
    r"""(?:\|\s*default\s*:\s*(?:"(?P<dq>[^"\r\n]*)"|'(?P<sq>[^'\r\n]*)')\s*)?\}\}"""
)


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return str(value)


@dataclass(frozen=True, slots=True)
class MergeTemplate:
    """Literal text interleaved with merge slots: ``literals[0] slot[0] literals[1] ...``."""

    literals: tuple[str, ...]
    # (field name, default already escaped for the mode)
    slots: tuple[tuple[str, str], ...]
    html: bool

    @classmethod
    def compile(cls, source: str, *, html: bool) -> MergeTemplate:
        literals: list[str] = []
        slots: list[tuple[str, str]] = []
        position = 0
        for match in _PLACEHOLDER.finditer(source):
            literals.append(source[position : match.start()])
            default = match.group("dq") if match.group("dq") is not None else (match.group("sq") or "")
            # Defaults are text like merge values, so "Tom & Jerry" is escaped in HTML too.
            slots.append((match.group("name"), htmllib.escape(default) if html else default))
            position = match.end()
        literals.append(source[position:])
        return cls(literals=tuple(literals), slots=tuple(slots), html=html)

    @property
    def fields(self) -> set[str]:
        return {name for name, _default in self.slots}

    def render(self, context: Mapping[str, object]) -> str:
        literals = self.literals
        if not self.slots:
            return literals[0]
        out = [literals[0]]
        get = context.get
        escape = htmllib.escape if self.html else None
        for index, (name, default) in enumerate(self.slots, start=1):
            value = get(name)
            text = value if type(value) is str else _as_text(value)
            if not text:
                out.append(default)
            elif escape is not None:
                out.append(escape(text))
            else:
                out.append(text)
            out.append(literals[index])
        return "".join(out)

    def __add__(self, other: MergeTemplate) -> MergeTemplate:
        if self.html != other.html:
            raise TypeError("cannot join HTML and text templates")
        literals = (*self.literals[:-1], self.literals[-1] + other.literals[0], *other.literals[1:])
        return MergeTemplate(literals=literals, slots=self.slots + other.slots, html=self.html)

    def split_before_last(self, marker: str) -> tuple[MergeTemplate, MergeTemplate] | None:
        """Split at the last case-insensitive ``marker`` found in literal text (never inside a value)."""
        needle = marker.lower()
        for index in range(len(self.literals) - 1, -1, -1):
            at = self.literals[index].lower().rfind(needle)
            if at >= 0:
                text = self.literals[index]
                head = MergeTemplate((*self.literals[:index], text[:at]), self.slots[:index], self.html)
                tail = MergeTemplate((text[at:], *self.literals[index + 1 :]), self.slots[index:], self.html)
                return head, tail
        return None


def literal(text: str, *, html: bool) -> MergeTemplate:
    return MergeTemplate(literals=(text,), slots=(), html=html)


def slot(name: str, *, html: bool) -> MergeTemplate:
    return MergeTemplate(literals=("", ""), slots=((name, ""),), html=html)


# Fields that the system fills in; they win over recipient data so a CSV column called
# "unsubscribe_url" cannot replace the real link.
SYSTEM_FIELDS = frozenset({"unsubscribe_url", "postal_address"})


def merge_context(recipient: Mapping[str, object]) -> dict[str, object]:
    """Flatten a recipient (email, name, company, country, custom={...}) into merge fields."""
    context: dict[str, object] = {}
    custom = recipient.get("custom")
    if isinstance(custom, Mapping):
        context.update((str(key), value) for key, value in custom.items())
    for key, value in recipient.items():
        if key != "custom":
            context[key] = value
    name = context.get("name")
    if "first_name" not in context and isinstance(name, str) and name.strip():
        context["first_name"] = name.split()[0]
    return context


class _TextFromHtml(HTMLParser):
    """A plain-text alternative derived from the HTML source, placeholders left intact."""

    _BLOCK = frozenset({"p", "div", "br", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "hr"})
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.hrefs: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in self._BLOCK:
            self.parts.append("\n")
        elif tag == "a":
            self.hrefs.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")
        elif tag == "a" and self.hrefs:
            href = self.hrefs.pop()
            if href and not href.startswith(("#", "mailto:")):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.parts).splitlines()]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def html_to_text(source: str) -> str:
    parser = _TextFromHtml()
    parser.feed(source)
    parser.close()
    return parser.text()


def _qp(text: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line ends.

    A leading "." or "From " is encoded too: broken relays and mbox writers alter
    those, which would break the DKIM body hash.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    data = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    data = data.replace(b"\n.", b"\n=2E").replace(b"\nFrom ", b"\n=46rom ")
    if data.startswith(b"."):
        data = b"=2E" + data[1:]
    elif data.startswith(b"From "):
        data = b"=46" + data[1:]
    return data.replace(b"\n", b"\r\n")


_last_date: tuple[int, str] = (0, "")


def _date_header(now: datetime) -> str:
    # Formatting the date is a measurable share of a render; it only changes once a second.
    global _last_date
    second = int(now.timestamp())
    if _last_date[0] != second:
        _last_date = (second, format_datetime(now.replace(microsecond=0)))
    return _last_date[1]


def _footer_templates(postal_address: str) -> tuple[MergeTemplate, MergeTemplate]:
    postal_html = "<br>".join(htmllib.escape(line.strip()) for line in postal_address.splitlines() if line.strip())
    html_footer = (
        literal(
            '\n<div style="margin-top:32px;padding-top:12px;border-top:1px solid #e5e7eb;'
            'font-family:Arial,Helvetica,sans-serif;font-size:12px;line-height:1.5;color:#6b7280">\n'
            '<p style="margin:0 0 6px">Don\'t want these emails? <a href="',
            html=True,
        )
        + slot("unsubscribe_url", html=True)
        + literal(
            f'" style="color:#6b7280;text-decoration:underline">Unsubscribe</a>.</p>\n'
            f'<p style="margin:0">{postal_html}</p>\n</div>\n',
            html=True,
        )
    )
    text_footer = (
        literal("\n\n-- \nUnsubscribe: ", html=False)
        + slot("unsubscribe_url", html=False)
        + literal("\n" + postal_address.strip() + "\n", html=False)
    )
    return html_footer, text_footer


# Headers the builder writes itself; an extra header with one of these names would
# duplicate or contradict them.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version",
        "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post",
        "X-Mailops-Message", "Return-Path", "DKIM-Signature", "Received", "Sender",
    )
)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    message_id: str
    envelope_from: str
    recipient: str
    data: bytes
    subject: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)


class CompiledMessage:
    """One campaign's (or one transactional send's) message, ready for per-recipient rendering."""

    __slots__ = (
        "subject", "html", "text", "list_unsubscribe", "bounce_domain", "message_id_domain",
        "postal_address", "_from_line", "_reply_to_line", "_extra_lines", "_from_display",
        "_reply_to_display", "_extra_display", "_body_head", "_text_part_head", "_html_part_head",
        "_body_tail",
    )

    subject: MergeTemplate
    html: MergeTemplate | None
    text: MergeTemplate

    @classmethod
    def compile(
        cls,
        *,
        subject: str,
        html: str,
        text: str,
        from_email: str,
        from_name: str = "",
        reply_to: str | None = None,
        headers: Mapping[str, str] | None = None,
        list_unsubscribe: bool = True,
        postal_address: str | None = None,
        bounce_domain: str | None = None,
        message_id_domain: str | None = None,
    ) -> CompiledMessage:
        """Validate and pre-encode everything static; raises HeaderInjection, InvalidAddress or InvalidMessage."""
        mailops = settings.MAILOPS
        self = cls.__new__(cls)
        self.list_unsubscribe = list_unsubscribe

        if not subject.strip():
            raise InvalidMessage("subject is empty; write a subject line")
        check_header_value("Subject", subject)
        self.subject = MergeTemplate.compile(subject, html=False)

        if not html.strip() and not text.strip():
            raise InvalidMessage("message has no body; write the HTML body, the plain-text body, or both")

        from_email = normalize_email(from_email, what="From address")
        self._from_line = address_header("From", from_name, from_email)
        self._from_display = f"{from_name.strip()} <{from_email}>" if from_name.strip() else from_email
        if reply_to:
            reply_to = normalize_email(reply_to, what="Reply-To address")
            self._reply_to_line = address_header("Reply-To", None, reply_to)
        else:
            self._reply_to_line = None
        self._reply_to_display = reply_to or None

        self._extra_lines = []
        self._extra_display = {}
        for name, value in (headers or {}).items():
            check_header_name(name)
            if name.lower() in RESERVED_HEADERS:
                raise InvalidMessage(f"header {name!r} is set by mailops itself and cannot be overridden")
            self._extra_lines.append(unstructured_header(name, value))
            self._extra_display[name] = value

        self.bounce_domain = normalize_domain(
            bounce_domain if bounce_domain is not None else mailops["BOUNCE_DOMAIN"], what="bounce domain"
        )
        self.message_id_domain = normalize_domain(
            message_id_domain or from_email.rpartition("@")[2], what="Message-ID domain"
        )

        postal = (postal_address if postal_address is not None else mailops["POSTAL_ADDRESS"]).strip()
        self.postal_address = postal
        if list_unsubscribe and not postal:
            raise InvalidMessage(
                "marketing mail must carry the sender's postal address; set MAILOPS_POSTAL_ADDRESS"
            )

        html_template = MergeTemplate.compile(html, html=True) if html.strip() else None
        text_template = MergeTemplate.compile(text if text.strip() else html_to_text(html), html=False)
        if list_unsubscribe:
            html_footer, text_footer = _footer_templates(postal)
            text_template = text_template + text_footer
            if html_template is not None:
                split = html_template.split_before_last("</body>")
                if split is None:
                    html_template = html_template + html_footer
                else:
                    html_template = split[0] + html_footer + split[1]
        self.html = html_template
        self.text = text_template

        # "=_" can never occur in quoted-printable output, so the boundary cannot
        # collide with any body, whatever the recipient's data.
        boundary = "=_mailops_" + secrets.token_hex(12)
        text_part = 'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        html_part = 'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        if html_template is None:
            self._body_head = text_part.encode("ascii")
            self._text_part_head = b""
            self._html_part_head = b""
            self._body_tail = b""
        else:
            self._body_head = f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii")
            self._text_part_head = f"--{boundary}\r\n{text_part}".encode("ascii")
            self._html_part_head = f"--{boundary}\r\n{html_part}".encode("ascii")
            self._body_tail = f"--{boundary}--\r\n".encode("ascii")
        return self

    @property
    def fields(self) -> set[str]:
        """Merge fields the templates use (system fields excluded), e.g. to warn about missing columns."""
        used = self.subject.fields | self.text.fields
        if self.html is not None:
            used |= self.html.fields
        return used - SYSTEM_FIELDS

    def render(
        self,
        recipient: Mapping[str, object],
        *,
        message_pk: int,
        unsubscribe_token: str | None = None,
    ) -> RenderedMessage:
        """The full message for one recipient; raises RecipientRefused if their data is unsafe."""
        try:
            email = normalize_email(_as_text(recipient.get("email")), what="recipient")
        except (InvalidAddress, HeaderInjection) as exc:
            raise RecipientRefused(str(exc)) from exc
        name = _as_text(recipient.get("name")).strip()

        context = merge_context(recipient)
        header_lines: list[str] = [self._from_line]
        try:
            header_lines.append(address_header("To", name, email))
            subject = self.subject.render(context)
            subject_line = unstructured_header("Subject", subject)
        except HeaderInjection as exc:
            raise RecipientRefused(f"{exc} (from this recipient's merge data)") from exc

        message_id = make_message_id(self.message_id_domain)
        date = _date_header(timezone.now())
        if self._reply_to_line is not None:
            header_lines.append(self._reply_to_line)
        header_lines += [
            subject_line,
            "Date: " + date,
            "Message-ID: " + message_id,
            "MIME-Version: 1.0",
        ]
        headers = {
            "From": self._from_display,
            "To": f"{name} <{email}>" if name else email,
            **({"Reply-To": self._reply_to_display} if self._reply_to_display else {}),
            "Subject": subject,
            "Date": date,
            "Message-ID": message_id,
            "MIME-Version": "1.0",
        }

        context["postal_address"] = self.postal_address
        if self.list_unsubscribe:
            if not unsubscribe_token:
                raise ValueError("list_unsubscribe is on, so render() needs an unsubscribe_token")
            url = unsubscribe_url(unsubscribe_token)
            # The address as stored on the message (before normalisation), which is what the
            # bounce listener checks the mailto's MAC against.
            mailto = unsubscribe_mailto(message_id=message_pk, email=_as_text(recipient.get("email")))
            context["unsubscribe_url"] = url
            # Folded after the comma; the URIs themselves must stay whole.
            header_lines.append(f"List-Unsubscribe: <{url}>,\r\n <{mailto}>")
            header_lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
            headers["List-Unsubscribe"] = f"<{url}>, <{mailto}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        else:
            context["unsubscribe_url"] = ""
        header_lines.append(f"X-Mailops-Message: {message_pk}")
        headers["X-Mailops-Message"] = str(message_pk)
        header_lines += self._extra_lines
        headers.update(self._extra_display)

        text = self.text.render(context)
        head = ("\r\n".join(header_lines) + "\r\n").encode("ascii")
        if self.html is None:
            html = ""
            data = b"".join((head, self._body_head, _qp(text)))
        else:
            html = self.html.render(context)
            data = b"".join(
                (
                    head,
                    self._body_head,
                    self._text_part_head,
                    _qp(text),
                    self._html_part_head,
                    _qp(html),
                    self._body_tail,
                )
            )
        return RenderedMessage(
            message_id=message_id,
            envelope_from=verp_return_path(message_pk, self.bounce_domain),
            recipient=email,
            data=data,
            subject=subject,
            html=html,
            text=text,
            headers=headers,
        )


SAMPLE_RECIPIENT: dict[str, object] = {
    "email": "jane.doe@example.com",
    "name": "Jane Doe",
    "company": "Example Inc.",
    "country": "US",
    "custom": {},
}
# Never a valid signed token, so a link copied from a preview unsubscribes nobody.
PREVIEW_TOKEN = "preview"


def render_preview(compiled: CompiledMessage, recipient: Mapping[str, object] | None = None) -> RenderedMessage:
    """The message as ``recipient`` (or a sample prospect) would get it, for the dashboard."""
    return compiled.render(
        recipient if recipient is not None else SAMPLE_RECIPIENT,
        message_pk=0,
        unsubscribe_token=PREVIEW_TOKEN,
    )

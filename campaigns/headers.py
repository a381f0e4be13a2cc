"""Header values for outbound mail: injection refusal, RFC 2047 encoding, folding, VERP.

Everything here returns plain ``str`` that is pure ASCII, so a message can be assembled
by concatenation (see ``campaigns.rendering``) without the cost of ``email.message``.
"""

from __future__ import annotations

import base64
import hmac
import re
import uuid
from collections.abc import Sequence

from django.conf import settings
from django.utils.crypto import salted_hmac


class HeaderInjection(ValueError):
    """A header value would break out of its line (CR, LF or another control character)."""


class InvalidAddress(ValueError):
    """A string that cannot be written as an RFC 5322 addr-spec."""


# RFC 5322 lines SHOULD stay within 78 characters; RFC 2047 limits lines carrying
# encoded-words to 76.
MAX_LINE = 78
MAX_ENCODED_LINE = 76
# 39 UTF-8 bytes become 52 base64 characters, so one encoded-word is at most 64
# characters and fits after any of the usual header names on the first line.
_ENCODED_WORD_BYTES = 39
_ENCODED_WORD_OVERHEAD = len("=?utf-8?b??=")

# C0 controls except HTAB (legal folding whitespace), DEL, C1 controls (NEL among them)
# and the Unicode line/paragraph separators that some clients treat as line breaks.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_CHAR_NAMES = {"\r": "carriage return (CR)", "\n": "line feed (LF)", "\x00": "NUL byte"}
_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
# A display name made only of atoms separated by single spaces needs no quoting.
_PLAIN_PHRASE = re.compile(rf"{_ATEXT}+(?: {_ATEXT}+)*\Z")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_ADDRESS_LITERAL = re.compile(r"\[[!-Z^-~]+\]\Z")


def check_header_value(name: str, value: str) -> str:
    """Return ``value`` unchanged, or raise HeaderInjection naming the field and the character."""
    match = _FORBIDDEN.search(value)
    if match is None:
        return value
    char = match.group()
    what = _CHAR_NAMES.get(char, f"control character U+{ord(char):04X}")
    raise HeaderInjection(
        f"{name}: value contains a {what} at position {match.start()}; "
        "header values must be a single line without control characters"
    )


def check_header_name(name: str) -> str:
    if not _FIELD_NAME.match(name):
        raise HeaderInjection(
            f"{name!r} is not a valid header name; use printable ASCII without spaces or ':'"
        )
    return name


def normalize_domain(domain: str, *, what: str = "domain") -> str:
    """The ASCII (IDNA) form of ``domain``, or InvalidAddress."""
    check_header_value(what, domain)
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidAddress(f"{what} {domain!r} is not a valid internationalised domain name") from exc
    if not (_DOMAIN.match(domain) or _ADDRESS_LITERAL.match(domain)):
        raise InvalidAddress(f"{what} {domain!r} is not a valid domain name")
    return domain


def normalize_email(email: str, *, what: str = "address") -> str:
    """The addr-spec to put in a header: ASCII local part, IDNA domain.

    Non-ASCII local parts would need SMTPUTF8, which the relays are not assumed to offer,
    so they are refused rather than mangled.
    """
    check_header_value(what, email)
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddress(f"{what} {email!r} is not an email address; expected local-part@domain")
    if not _DOT_ATOM.match(local):
        raise InvalidAddress(
            f"{what} {email!r} has a local part that cannot be sent without SMTPUTF8 or quoting; "
            "use letters, digits and !#$%&'*+/=?^_`{|}~.- only"
        )
    return f"{local}@{normalize_domain(domain, what=what)}"


def encoded_words(text: str) -> list[str]:
    """RFC 2047 "B" encoded-words for ``text``, never splitting a UTF-8 sequence."""
    data = text.encode("utf-8")
    words: list[str] = []
    start = 0
    while True:
        end = start + _ENCODED_WORD_BYTES
        if end >= len(data):
            words.append(_encoded_word(data[start:]))
            return words
        # RFC 2047 readers join adjacent encoded-words exactly, but some (Python's own
        # address parser among them) put a space between them; cutting just after a
        # space where there is one limits the damage there to a doubled space.
        space = data.rfind(b" ", start + _ENCODED_WORD_BYTES // 3, end)
        if space >= 0:
            end = space + 1
        else:
            # Back off to the start of a character: continuation bytes are 0b10xxxxxx.
            while data[end] & 0xC0 == 0x80:
                end -= 1
        words.append(_encoded_word(data[start:end]))
        start = end


def _encoded_word(data: bytes) -> str:
    return "=?utf-8?b?" + base64.b64encode(data).decode("ascii") + "?="


def _needs_encoding(text: str) -> bool:
    # An ASCII "=?" could be read back as an encoded-word by the recipient's client.
    return not text.isascii() or "=?" in text


def fold(name: str, tokens: Sequence[str], *, limit: int = MAX_LINE) -> str:
    """``Name: tok tok ...`` folded before the joining spaces so lines stay within ``limit``.

    Returns the header without its final CRLF. Tokens are never split, so a single
    token longer than the limit makes a longer line (still far below RFC 5322's 998).
    Empty tokens (runs of spaces in the value) are kept but never folded before, so
    no continuation line is whitespace only.
    """
    lines: list[str] = []
    line = name + ":"
    for token in tokens:
        if token and len(line) + 1 + len(token) > limit and line.strip() != name + ":":
            lines.append(line)
            line = " " + token
        else:
            line += " " + token
    lines.append(line)
    return "\r\n".join(lines)


def unstructured_header(name: str, value: str) -> str:
    """A complete ``Name: value`` header line for free text (Subject, X-...), ASCII and folded."""
    check_header_value(name, value)
    if not _needs_encoding(value):
        if len(name) + 2 + len(value) <= MAX_LINE:
            return f"{name}: {value}"
        tokens = value.split(" ")
        if max(len(token) for token in tokens) < 900:
            return fold(name, tokens)
    return fold(name, encoded_words(value), limit=MAX_ENCODED_LINE)


def _display_name_tokens(name: str) -> list[str]:
    if _needs_encoding(name):
        return encoded_words(name)
    if _PLAIN_PHRASE.match(name):
        return name.split(" ")
    # Specials (comma, dot, quotes, parentheses...) need a quoted-string, kept whole.
    return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']


def _address_tokens(name: str | None, email: str, *, what: str) -> list[str]:
    addr = normalize_email(email, what=f"{what} address")
    name = (name or "").strip()
    if not name:
        return [addr]
    check_header_value(f"{what} name", name)
    return [*_display_name_tokens(name), f"<{addr}>"]


def format_address(name: str | None, email: str) -> str:
    """``Name <local@domain>`` with the name RFC 2047-encoded or quoted as needed (unfolded)."""
    return " ".join(_address_tokens(name, email, what="address"))


def address_header(header: str, name: str | None, email: str) -> str:
    """A complete, folded address header line such as ``To: Name <a@b>``."""
    tokens = _address_tokens(name, email, what=header)
    limit = MAX_ENCODED_LINE if any(token.startswith("=?") for token in tokens) else MAX_LINE
    return fold(header, tokens, limit=limit)


def make_message_id(domain: str) -> str:
    """A fresh ``<hex@domain>`` Message-ID; uuid4 gives 122 random bits, so no coordination is needed."""
    return f"<{uuid.uuid4().hex}@{normalize_domain(domain, what='Message-ID domain')}>"


# VERP: the envelope sender carries the message id so an asynchronous bounce, which
# arrives at the return path, names the message it is about. The id is MACed so a
# forged bounce cannot suppress somebody else's recipient.
_VERP_SALT = "mailops.verp"
_VERP_LOCAL = re.compile(r"b-(\d{1,20})-([a-z2-7]{16})\Z")


def _verp_mac(value: str, secret: str) -> str:
    digest = salted_hmac(_VERP_SALT, value, secret=secret, algorithm="sha256").digest()
    # Base32 lower case, because some MTAs change the case of local parts; 80 bits.
    return base64.b32encode(digest[:10]).decode("ascii").lower()


def verp_return_path(message_id: int, bounce_domain: str) -> str:
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 0:
        raise ValueError(f"VERP message id must be a non-negative int, not {message_id!r}")
    domain = normalize_domain(bounce_domain, what="bounce domain")
    return f"b-{message_id}-{_verp_mac(str(message_id), settings.SECRET_KEY)}@{domain}"


def parse_verp(address: str, *, bounce_domain: str | None = None) -> int | None:
    """The message id in a VERP address, or None if it is not ours or the MAC is wrong.

    Old SECRET_KEY_FALLBACKS are accepted too: bounces arrive days after sending, and a
    key rotation in between must not make them unmatchable.
    """
    if not isinstance(address, str):
        return None
    address = address.strip().strip("<>").lower()
    local, at, domain = address.rpartition("@")
    if not at:
        return None
    if bounce_domain is not None and domain != bounce_domain.strip().lower().rstrip("."):
        return None
    match = _VERP_LOCAL.match(local)
    if match is None:
        return None
    value, mac = match.groups()
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        if hmac.compare_digest(mac, _verp_mac(value, secret)):
            return int(value)
    return None

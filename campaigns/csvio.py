"""Streaming CSV/TSV reading and writing for prospect lists.

Pure parsing: no database. The reader is single-pass and memory-flat: it
holds one decoded chunk, one row, a per-domain validation cache and an
8-byte-per-address dedupe table, never the whole file.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from array import array
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import IO, Any, NamedTuple

import email_validator
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

__all__ = [
    "ImportRejected",
    "ProspectReader",
    "ProspectRow",
    "RowError",
    "open_prospect_reader",
    "safe_cell",
    "write_error_report",
    "write_prospects_csv",
]

# Enough to see the header and sniff encoding/delimiter, small enough to keep RSS flat.
_PREFIX_BYTES = 64 * 1024

FIELDS = ("email", "name", "company", "country")


class ImportRejected(Exception):
    """The whole file is unusable; nothing from it may be imported."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# `line` is the physical line where the row starts; the header is line 1 and a
# quoted value with line breaks advances it, as a text editor would count.
class ProspectRow(NamedTuple):
    line: int
    email: str
    name: str
    company: str
    country: str
    custom: dict[str, str]


class RowError(NamedTuple):
    line: int
    reason: str
    raw: str


# --- decoding ---------------------------------------------------------------

# Windows leaves five cp1252 bytes undefined; mapping them to the same-valued
# code point (as Latin-1 does) means no byte of the upload is ever dropped.
_CP1252_TABLE = "".join(
    bytes([b]).decode("cp1252", errors="replace").replace("\ufffd", chr(b)) for b in range(256)
)
_FALLBACK_ERRORS = "mailops.cp1252_fallback"


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    # A UTF-8 file may contain a few Latin-1 lines pasted in from elsewhere,
    # so bytes that are not valid UTF-8 are read as cp1252 rather than lost.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(_CP1252_TABLE[b] for b in bad), exc.end


codecs.register_error(_FALLBACK_ERRORS, _cp1252_fallback)


class _CountingRaw(io.RawIOBase):
    """Replays the sniffed prefix, then streams the rest, counting bytes.

    Works on non-seekable uploads, and enforces max_bytes while streaming
    when the size could not be known up front. Closing it leaves the
    caller's upload open.
    """

    def __init__(self, prefix: bytes, source: IO[bytes], *, max_bytes: int | None, bytes_read: int) -> None:
        self._prefix = memoryview(prefix)
        self._source = source
        self._max_bytes = max_bytes
        self.bytes_read = bytes_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._source.read(len(buffer))
        if not data:
            return 0
        n = len(data)
        self.bytes_read += n
        if self._max_bytes is not None and self.bytes_read > self._max_bytes:
            raise ImportRejected(_too_big_message(size=None, max_bytes=self._max_bytes))
        buffer[:n] = data
        return n


def _human_size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB ({n:,} bytes)"
    return f"{n / (1024 * 1024):.1f} MB ({n:,} bytes)"


def _too_big_message(*, size: int | None, max_bytes: int) -> str:
    what = f"The file is {_human_size(size)}" if size is not None else "The file is larger than the limit"
    return (
        f"{what}, over the {_human_size(max_bytes)} import limit. "
        "Split it into smaller files (for example 100,000 rows each, keeping the header row in every part) "
        "and import them one by one."
    )


_SAVE_AS_CSV = "Open it in your spreadsheet and save it as CSV UTF-8 (File → Save As → CSV UTF-8), then upload that file."
_MAGIC = (
    (b"PK\x03\x04", "The file is an Excel workbook (.xlsx) or another zip archive, not a CSV."),
    (b"\xd0\xcf\x11\xe0", "The file is an old Excel workbook (.xls), not a CSV."),
    (b"%PDF-", "The file is a PDF, not a CSV."),
    (b"\x1f\x8b", "The file is gzip-compressed, not a CSV."),
    (b"{\\rtf", "The file is a Word/RTF document, not a CSV."),
)


def _read_prefix(source: IO[bytes]) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < _PREFIX_BYTES:
        data = source.read(_PREFIX_BYTES - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _known_size(source: IO[bytes]) -> int | None:
    size = getattr(source, "size", None)  # Django's UploadedFile
    if isinstance(size, int):
        return size
    try:
        if not source.seekable():
            return None
        here = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(here)
        return end - here
    except (AttributeError, OSError, ValueError):
        return None


def _detect_encoding(prefix: bytes, *, at_eof: bool) -> str:
    if prefix.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if prefix.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode Text" export: tab-separated UTF-16 with a BOM.
        return "utf-16"
    for magic, what in _MAGIC:
        if prefix.startswith(magic):
            raise ImportRejected(f"{what} {_SAVE_AS_CSV}")
    if b"\x00" in prefix:
        raise ImportRejected(f"The file contains binary data (NUL bytes), so it is not a CSV. {_SAVE_AS_CSV}")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(prefix, final=at_eof)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _detect_delimiter(first_line: str) -> str:
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for ch in first_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


# --- header mapping -----------------------------------------------------------

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _fold(header: str) -> str:
    """Lowercase, accent-free, words separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", header.strip().lstrip("\ufeff"))
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return _NON_ALNUM.sub(" ", ascii_only).strip()


_EMAIL_ALIASES_SHOWN = "e-mail, correo, correo electrónico, mail, email address"
_ALIASES: dict[str, tuple[str, ...]] = {
    "email": (
        "email", "e mail", "mail", "email address", "e mail address", "mail address", "emailaddress",
        "correo", "correo electronico", "correo e", "direccion de correo", "direccion de email",
        "direccion email", "courriel",
    ),
    "name": (
        "name", "full name", "fullname", "contact", "contact name", "nombre", "nombre completo",
        "nombre y apellidos", "nombre contacto", "contacto",
    ),
    "company": (
        "company", "company name", "empresa", "agencia", "agency", "organization", "organisation",
        "organizacion", "compania", "business", "razon social",
    ),
    "country": ("country", "country name", "country code", "pais", "nation"),
    "first_name": ("first name", "firstname", "given name", "first", "primer nombre"),
    "last_name": ("last name", "lastname", "surname", "family name", "last", "apellido", "apellidos"),
}
_ALIAS_TO_FIELD = {alias: field for field, aliases in _ALIASES.items() for alias in aliases}


def _slug(header: str) -> str:
    slug = _fold(header).replace(" ", "_")
    if slug and slug[0].isdigit():
        # Merge fields are identifiers; "2024_spend" would not parse as one.
        slug = "f_" + slug
    return slug


class _Layout(NamedTuple):
    width: int
    email: int
    name: int | None
    company: int | None
    country: int | None
    first: int | None
    last: int | None
    custom: tuple[tuple[str, int], ...]
    mapping: tuple[tuple[str, str], ...]


def _map_header(header: list[str]) -> _Layout:
    found: dict[str, int] = {}
    name_alias = ""
    targets: dict[int, str] = {}
    custom: list[tuple[str, int]] = []
    taken = set(FIELDS)

    def add_custom(index: int) -> None:
        slug = _slug(header[index]) or f"column_{index + 1}"
        base, n = slug, 2
        while slug in taken:
            slug, n = f"{base}_{n}", n + 1
        taken.add(slug)
        custom.append((slug, index))
        targets[index] = f"custom.{slug}"

    for index, title in enumerate(header):
        folded = _fold(title)
        field = _ALIAS_TO_FIELD.get(folded)
        if field is not None and field not in found:
            found[field] = index
            if field == "name":
                name_alias = folded
            if field in FIELDS:
                targets[index] = field
                continue
        # First/last name also stay available as merge fields ({{ first_name }}).
        add_custom(index)

    if "email" not in found:
        raise ImportRejected(_no_email_message(header))

    first, last = found.get("first_name"), found.get("last_name")
    name = found.get("name")
    if name is not None and name_alias == "nombre" and last is not None and first is None:
        # Spanish sheets split "nombre" (given name) and "apellido(s)".
        first, name = name, None
        add_custom(first)
    return _Layout(
        width=len(header),
        email=found["email"],
        name=name,
        company=found.get("company"),
        country=found.get("country"),
        first=first if name is None else None,
        last=last if name is None else None,
        custom=tuple(custom),
        mapping=tuple((header[i], targets[i]) for i in range(len(header))),
    )


_LOOKS_LIKE_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _no_email_message(header: list[str]) -> str:
    columns = ", ".join(h.strip() or "(blank)" for h in header)
    if any(_LOOKS_LIKE_ADDRESS.fullmatch(h) for h in header):
        return (
            f"The first row looks like data, not column names (columns are: {columns}). "
            "Add a header row such as email,name,company,country as the first line."
        )
    return (
        f"column 'email' not found; columns are: {columns}. "
        f"Rename the address column to email (also accepted: {_EMAIL_ALIASES_SHOWN} ...)."
    )


# --- address normalisation ----------------------------------------------------

# Ordinary ASCII addresses: an RFC 5322 dot-atom local part and an LDH domain.
# Anything else goes to email-validator whole, so its verdict always stands.
_ATEXT = r"[A-Za-z0-9_!#$%&'*+\-/=?^`{|}~]+"
_FAST_ADDRESS = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@([A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?)")
# A lowercase hostname email-validator accepts unchanged: 2+ labels of at most
# 63 characters, an alphabetic TLD, and no "--" (which could be Punycode or an
# invalid R-LDH label, both left to email-validator).
_PLAIN_DOMAIN = re.compile(r"(?!.*--)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_CASE_INSENSITIVE_LOCALS = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_DOMAIN_CACHE_MAX = 20_000


class _AddressNormalizer:
    """email-validator's normalisation, at a few microseconds per address.

    email-validator scans every address character by character and runs the
    IDNA tables over every domain, which would cap an import at a few
    thousand rows per second. For a dot-atom ASCII local part its result is
    the local part unchanged (RFC 2142 role names lowercased) plus the
    normalized domain; for a plain lowercase-able hostname that domain is
    simply lowercased. Everything outside those shapes, and every rejection,
    comes from validate_email itself (tests compare the two on a corpus).
    """

    def __init__(self) -> None:
        self._domains: dict[str, tuple[str, str]] = {}

    def normalize(self, address: str) -> tuple[str, str]:
        """Return (normalized, "") or ("", reason)."""
        match = _FAST_ADDRESS.fullmatch(address) if len(address) <= 254 else None
        if match is None:
            return self._slow(address)
        local, domain = match.groups()
        verdict = self._domains.get(domain)
        if verdict is None:
            verdict = self._check_domain(domain)
        normalized_domain, reason = verdict
        if reason:
            return "", reason
        if local.lower() in _CASE_INSENSITIVE_LOCALS:
            local = local.lower()
        return f"{local}@{normalized_domain}", ""

    def _check_domain(self, domain: str) -> tuple[str, str]:
        if len(self._domains) >= _DOMAIN_CACHE_MAX:
            self._domains.clear()
        lowered = domain.lower()
        if len(lowered) <= 253 and _PLAIN_DOMAIN.fullmatch(lowered) and not _is_special_use(lowered):
            verdict = (lowered, "")
        else:
            try:
                verdict = (validate_email(f"x@{domain}", check_deliverability=False).domain, "")
            except EmailNotValidError as exc:
                verdict = ("", str(exc))
        self._domains[domain] = verdict
        return verdict

    @staticmethod
    def _slow(address: str) -> tuple[str, str]:
        try:
            return validate_email(address, check_deliverability=False).normalized, ""
        except EmailNotValidError as exc:
            return "", str(exc)


def _is_special_use(domain: str) -> bool:
    # Read at call time: email-validator lets a project edit this list.
    return any(domain == d or domain.endswith("." + d) for d in email_validator.SPECIAL_USE_DOMAIN_NAMES)


class _SeenAddresses:
    """A set of 64-bit address hashes in one flat array (8 bytes a slot).

    A Python set of a million strings costs ~100 MB; this costs 16 MB. Two
    different addresses sharing a 64-bit hash is about a 1-in-10^7 chance per
    million-row file, and would merge them as duplicates.
    """

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * 1024))
        self._mask = 1023
        self._count = 0

    def add(self, key: str) -> bool:
        """Add key; True if it was not present."""
        h = (hash(key) & 0xFFFF_FFFF_FFFF_FFFF) or 1  # 0 marks an empty slot
        slots, mask = self._slots, self._mask
        i = h & mask
        while True:
            current = slots[i]
            if current == 0:
                break
            if current == h:
                return False
            i = (i + 1) & mask
        slots[i] = h
        self._count += 1
        if self._count * 2 > mask:
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        self._mask = mask = len(old) * 2 - 1
        self._slots = slots = array("Q", bytes(8 * (mask + 1)))
        for h in old:
            if h:
                i = h & mask
                while slots[i]:
                    i = (i + 1) & mask
                slots[i] = h


# --- reader -------------------------------------------------------------------

_FORMULA_TRIGGERS = frozenset("=+-@\t\r")
_DELIMITER_NAMES = {",": "comma (,)", ";": "semicolon (;)", "\t": "tab"}


def _unneutralize(value: str) -> str:
    # Undo safe_cell's apostrophe so an export re-imports unchanged.
    if len(value) > 1 and value[0] == "'" and value[1] in _FORMULA_TRIGGERS:
        return value[1:]
    return value


class ProspectReader:
    """Iterate to get a ProspectRow or RowError per data row, in file order.

    Blank rows are skipped silently; a later duplicate of an address is
    merged into the first and only counted. Counters are final once iteration
    ends. Iteration may raise ImportRejected when max_bytes is exceeded on an
    upload whose size could not be known up front; callers must treat that as
    a whole-file rejection.
    """

    def __init__(
        self,
        *,
        rows: Any,
        raw: _CountingRaw,
        header: list[str],
        layout: _Layout,
        encoding: str,
        delimiter: str,
        total_bytes: int | None,
    ) -> None:
        self._rows = rows
        self._raw = raw
        self._layout = layout
        self._next_line = rows.line_num + 1
        self._first: list[str] | None = None
        self._first_error: RowError | None = None
        self._normalizer = _AddressNormalizer()
        self._seen = _SeenAddresses()
        self._iterated = False
        self.header = header
        self.encoding = encoding
        self.delimiter = delimiter
        self.total_bytes = total_bytes
        self.rows_ok = 0
        self.rows_invalid = 0
        self.rows_duplicate = 0

    @property
    def rows_total(self) -> int:
        """Data rows seen so far; blank rows are not data."""
        return self.rows_ok + self.rows_invalid + self.rows_duplicate

    @property
    def mapping(self) -> list[tuple[str, str]]:
        """(header, target) per column, in file order.

        Targets are "email", "name", "company", "country" or "custom.<slug>".
        """
        return list(self._layout.mapping)

    @property
    def custom_fields(self) -> list[str]:
        return [slug for slug, _ in self._layout.custom]

    @property
    def bytes_read(self) -> int:
        """Bytes consumed from the upload so far, for progress reporting."""
        return self._raw.bytes_read

    def _look_ahead(self) -> bool:
        """Read up to the first non-blank record; False if there is none."""
        rows = self._rows
        while True:
            start = self._next_line
            try:
                cells = next(rows)
            except StopIteration:
                return False
            except csv.Error as exc:
                self._next_line = rows.line_num + 1
                self._first_error = self._unreadable(start, exc)
                return True
            self._next_line = rows.line_num + 1
            if any(c.strip() for c in cells):
                self._first = cells
                self._next_line = start
                return True

    def __iter__(self) -> Iterator[ProspectRow | RowError]:
        if self._iterated:
            raise RuntimeError("a ProspectReader can be iterated only once")
        self._iterated = True
        if self._first_error is not None:
            yield self._first_error
        yield from self._iter_rows()

    def _iter_rows(self) -> Iterator[ProspectRow | RowError]:
        layout = self._layout
        width = layout.width
        email_at, name_at, company_at, country_at = layout.email, layout.name, layout.company, layout.country
        first_at, last_at, custom_cols = layout.first, layout.last, layout.custom
        combine_name = first_at is not None or last_at is not None
        normalize = self._normalizer.normalize
        seen_add = self._seen.add
        rows = self._rows
        # chain() keeps the csv reader's line_num exact: it reads nothing ahead.
        records = chain((self._first,), rows) if self._first is not None else rows
        self._first = None
        start = self._next_line
        while True:
            try:
                cells = next(records)
            except StopIteration:
                return
            except csv.Error as exc:
                end = rows.line_num
                yield self._unreadable(start, exc)
                start = end + 1
                continue
            end = rows.line_num

            n = len(cells)
            if n != width:
                if n < width:
                    if n == 0:
                        start = end + 1
                        continue
                    cells += [""] * (width - n)  # short rows are fine: missing cells are empty
                elif any(c.strip() for c in cells[width:]):
                    self.rows_invalid += 1
                    yield self._error(
                        start,
                        end,
                        f"too many columns: {n} values but the header has {width}; a value probably contains "
                        f"the {_DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))} delimiter, "
                        "so wrap that value in double quotes",
                        cells,
                    )
                    start = end + 1
                    continue

            cells = [c.strip() for c in cells]
            # Only rows that safe_cell touched pay for undoing it.
            if "\x1f'" in "\x1f" + "\x1f".join(cells):
                cells = [_unneutralize(c) for c in cells]

            address = cells[email_at]
            if not address:
                if any(cells):
                    self.rows_invalid += 1
                    yield self._error(start, end, "missing email address: the email cell is empty", cells[:n])
                # else: spreadsheets export trailing ",,,," rows; they are not data.
                start = end + 1
                continue

            normalized, problem = normalize(address)
            if problem:
                self.rows_invalid += 1
                yield self._error(start, end, f"invalid email address {address!r}: {problem}", cells[:n])
                start = end + 1
                continue
            if not seen_add(normalized.lower()):
                self.rows_duplicate += 1
                start = end + 1
                continue

            if combine_name:
                name = f"{cells[first_at] if first_at is not None else ''} {cells[last_at] if last_at is not None else ''}"
                name = name.strip()
            else:
                name = cells[name_at] if name_at is not None else ""
            self.rows_ok += 1
            yield ProspectRow(
                start,
                normalized,
                name,
                cells[company_at] if company_at is not None else "",
                cells[country_at] if country_at is not None else "",
                {slug: cells[i] for slug, i in custom_cols},
            )
            start = end + 1

    def _unreadable(self, start: int, exc: csv.Error) -> RowError:
        self.rows_invalid += 1
        return RowError(start, f"the row could not be read as CSV ({exc}); check for an unclosed double quote", "")

    def _error(self, start: int, end: int, reason: str, cells: list[str]) -> RowError:
        if end > start:
            reason += f" (the row spans lines {start}–{end}; check for an unclosed double quote)"
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.delimiter, lineterminator="").writerow(cells)
        return RowError(start, reason, buffer.getvalue())


_EMPTY_MESSAGE = (
    "The file is empty. Export the prospect list with a header row (email, name, company, country) "
    "followed by one row per prospect."
)
_HEADER_ONLY_MESSAGE = (
    "The file has a header row but no data rows. Add one row per prospect below the header and upload it again."
)


def open_prospect_reader(binary_file: IO[bytes], *, max_bytes: int | None) -> ProspectReader:
    """Sniff encoding and delimiter, map the header, and return a reader.

    Raises ImportRejected for whole-file problems, all found before any row
    is yielded: binary content, empty file, no email column, header without
    data rows, and size over max_bytes when the size is knowable.
    """
    total = _known_size(binary_file)
    if max_bytes is not None and total is not None and total > max_bytes:
        raise ImportRejected(_too_big_message(size=total, max_bytes=max_bytes))

    prefix = _read_prefix(binary_file)
    at_eof = len(prefix) < _PREFIX_BYTES
    if max_bytes is not None and len(prefix) > max_bytes:
        raise ImportRejected(_too_big_message(size=total, max_bytes=max_bytes))
    if not prefix.strip(b" \t\r\n\xef\xbb\xbf\xff\xfe"):
        raise ImportRejected(_EMPTY_MESSAGE)
    encoding = _detect_encoding(prefix, at_eof=at_eof)

    sample = codecs.getincrementaldecoder(encoding)(errors=_FALLBACK_ERRORS).decode(prefix, final=at_eof)
    first_line = next((line for line in sample.lstrip("\ufeff").splitlines() if line.strip()), "")
    delimiter = _detect_delimiter(first_line)

    raw = _CountingRaw(prefix, binary_file, max_bytes=max_bytes, bytes_read=len(prefix))
    text = io.TextIOWrapper(
        io.BufferedReader(raw, buffer_size=_PREFIX_BYTES), encoding=encoding, errors=_FALLBACK_ERRORS, newline=""
    )
    rows = csv.reader(text, delimiter=delimiter)
    try:
        for header in rows:
            if any(cell.strip() for cell in header):
                break
        else:
            raise ImportRejected(_EMPTY_MESSAGE)
    except csv.Error as exc:
        raise ImportRejected(
            f"The header row could not be read as CSV ({exc}). Check the first line for an unclosed double quote, "
            f"or {_SAVE_AS_CSV[0].lower()}{_SAVE_AS_CSV[1:]}"
        ) from exc
    header = [cell.strip() for cell in header]

    reader = ProspectReader(
        rows=rows,
        raw=raw,
        header=header,
        layout=_map_header(header),
        encoding=encoding,
        delimiter=delimiter,
        total_bytes=total,
    )
    if not reader._look_ahead():
        raise ImportRejected(_HEADER_ONLY_MESSAGE)
    return reader


# --- writers ------------------------------------------------------------------


def safe_cell(value: object) -> str:
    """Text for a spreadsheet cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    if text and text[0] in _FORMULA_TRIGGERS:
        return "'" + text
    return text


def write_prospects_csv(
    rows: Iterable[dict[str, Any]], fileobj: IO[str], *, columns: list[str], bom: bool = True
) -> int:
    """Write a header and one line per row to a text file; returns rows written.

    A column missing from a row is looked up in row["custom"], so
    ProspectRow._asdict() and Prospect values() both export directly. The
    BOM makes Excel read the file as UTF-8.
    """
    if bom:
        fileobj.write("\ufeff")
    writer = csv.writer(fileobj, lineterminator="\r\n")
    writer.writerow([safe_cell(c) for c in columns])
    count = 0
    for row in rows:
        custom = row.get("custom") or {}
        writer.writerow([safe_cell(row[c] if c in row else custom.get(c, "")) for c in columns])
        count += 1
    return count


def write_error_report(errors: Iterable[RowError], fileobj: IO[str], *, bom: bool = True) -> int:
    """Write line, reason, raw for each row error; returns rows written."""
    if bom:
        fileobj.write("\ufeff")
    writer = csv.writer(fileobj, lineterminator="\r\n")
    writer.writerow(["line", "reason", "raw"])
    count = 0
    for error in errors:
        writer.writerow([error.line, safe_cell(error.reason), safe_cell(error.raw)])
        count += 1
    return count

from __future__ import annotations

import codecs
import csv
import io
import random

import pytest
from email_validator import EmailNotValidError, validate_email

from campaigns.csvio import (
    ImportRejected,
    ProspectRow,
    RowError,
    _AddressNormalizer,
    open_prospect_reader,
    safe_cell,
    write_error_report,
    write_prospects_csv,
)


def read(data: bytes, *, max_bytes: int | None = None) -> tuple[list[ProspectRow], list[RowError], object]:
    reader = open_prospect_reader(io.BytesIO(data), max_bytes=max_bytes)
    rows: list[ProspectRow] = []
    errors: list[RowError] = []
    for item in reader:
        (rows if isinstance(item, ProspectRow) else errors).append(item)
    return rows, errors, reader


def rejection(data: bytes, *, max_bytes: int | None = None) -> str:
    with pytest.raises(ImportRejected) as caught:
        read(data, max_bytes=max_bytes)
    return caught.value.message


def validator_message(address: str) -> str:
    with pytest.raises(EmailNotValidError) as caught:
        validate_email(address, check_deliverability=False)
    return str(caught.value)


class NonSeekable(io.RawIOBase):
    """An upload stream whose size cannot be known in advance."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        chunk = self._data.read(min(len(buffer), 4096))
        buffer[: len(chunk)] = chunk
        return len(chunk)


# --- encodings and delimiters -------------------------------------------------


def test_it_reads_utf8_and_normalizes_only_the_domain():
    rows, errors, reader = read(b"email,name,company,country\nAna.Lopez@Example.COM,Ana,Acme,ES\n")
    assert errors == []
    assert rows == [ProspectRow(2, "Ana.Lopez@example.com", "Ana", "Acme", "ES", {})]
    assert reader.encoding == "utf-8"
    assert reader.delimiter == ","


def test_it_strips_a_utf8_bom_so_the_email_header_is_found():
    data = codecs.BOM_UTF8 + "Email,Name\r\nzoe@example.com,Zoë Ñúñez\r\n".encode()
    rows, errors, reader = read(data)
    assert errors == []
    assert [(r.email, r.name) for r in rows] == [("zoe@example.com", "Zoë Ñúñez")]
    assert reader.header == ["Email", "Name"]


def test_it_falls_back_to_latin1_when_the_file_is_not_utf8():
    data = "email;nombre\njose@example.es;José Peña\n".encode("latin-1")
    rows, errors, reader = read(data)
    assert errors == []
    assert rows[0].name == "José Peña"
    assert reader.encoding == "cp1252"


def test_it_reads_cp1252_punctuation_and_keeps_undefined_bytes():
    data = b"email,name\nx@example.com,\x93Quoted\x94 \x80 \x81\n"
    rows, _, _ = read(data)
    assert rows[0].name == "\u201cQuoted\u201d \u20ac \x81"


def test_it_keeps_latin1_bytes_that_appear_only_after_the_sniffed_chunk():
    filler = "".join(f"user{i}@example.com,Plain Name {i}\n" for i in range(4000)).encode()
    assert len(filler) > 64 * 1024
    data = (
        b"email,name\n"
        + filler
        + "late@example.com,José Peña\n".encode("latin-1")
        + "utf@example.com,José Peña\n".encode("utf-8")
    )
    rows, errors, reader = read(data)
    assert errors == []
    assert reader.encoding == "utf-8"
    assert [(r.line, r.name) for r in rows[-2:]] == [(4002, "José Peña"), (4003, "José Peña")]


def test_it_reads_tab_separated_files():
    rows, errors, reader = read(b"name\temail\tcompany\nAna, Jr.\tana@example.com\tAcme; Inc\n")
    assert errors == []
    assert reader.delimiter == "\t"
    assert (rows[0].name, rows[0].email, rows[0].company) == ("Ana, Jr.", "ana@example.com", "Acme; Inc")


def test_it_reads_semicolon_files_from_european_excel():
    rows, errors, reader = read(b"email;name;company\r\nana@example.com;Ana;Acme, S.L.\r\n")
    assert errors == []
    assert reader.delimiter == ";"
    assert rows[0].company == "Acme, S.L."


def test_a_quoted_header_containing_commas_does_not_fool_delimiter_detection():
    rows, errors, reader = read(b'"email";"name, full";"city"\nana@example.com;Ana;Madrid\n')
    assert errors == []
    assert reader.delimiter == ";"
    assert rows[0].custom == {"name_full": "Ana", "city": "Madrid"}


def test_it_reads_excel_unicode_text_exports():
    data = "email\tname\r\nana@example.com\tÁna\r\n".encode("utf-16")
    rows, errors, _ = read(data)
    assert errors == []
    assert [(r.email, r.name) for r in rows] == [("ana@example.com", "Ána")]


def test_it_accepts_old_mac_line_endings():
    rows, errors, _ = read(b"email,name\ra@example.com,A\rb@example.com,B\r")
    assert errors == []
    assert [(r.line, r.email) for r in rows] == [(2, "a@example.com"), (3, "b@example.com")]


# --- header mapping -----------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["email", "E-mail", "E_MAIL", "correo", "Correo Electrónico", "  CORREO  electronico ", "mail", "Email Address"],
)
def test_email_aliases_are_matched_ignoring_case_accents_and_spacing(header):
    rows, errors, reader = read(f"{header},x\nana@example.com,1\n".encode())
    assert errors == []
    assert rows[0].email == "ana@example.com"
    assert reader.mapping == [(header.strip(), "email"), ("x", "custom.x")]


def test_spanish_headers_map_to_prospect_fields():
    data = "Correo electrónico;Nombre;Agencia;País\nana@example.es;Ana Ruiz;Viajes Sol;España\n".encode()
    rows, errors, _ = read(data)
    assert errors == []
    assert rows == [ProspectRow(2, "ana@example.es", "Ana Ruiz", "Viajes Sol", "España", {})]


@pytest.mark.parametrize(
    ("name_header", "company_header", "country_header"),
    [
        ("Full Name", "Organization", "Country"),
        ("contact", "empresa", "pais"),
        ("NOMBRE", "Agency", "PAÍS"),
    ],
)
def test_name_company_and_country_aliases_are_recognised(name_header, company_header, country_header):
    data = f"{name_header},email,{company_header},{country_header}\nAna,ana@example.com,Acme,Chile\n".encode()
    rows, _, _ = read(data)
    assert (rows[0].name, rows[0].company, rows[0].country, rows[0].custom) == ("Ana", "Acme", "Chile", {})


def test_first_and_last_name_are_combined_when_there_is_no_name_column():
    rows, _, _ = read(b"First Name,Last Name,Email\nAna,Ruiz,ana@example.com\nBo,,bo@example.com\n")
    assert [r.name for r in rows] == ["Ana Ruiz", "Bo"]
    # They stay available as merge fields too, e.g. {{ first_name }}.
    assert rows[0].custom == {"first_name": "Ana", "last_name": "Ruiz"}


def test_nombre_and_apellido_are_combined_into_the_name():
    rows, _, _ = read("nombre;apellidos;correo\nJosé;Peña García;jose@example.es\n".encode())
    assert rows[0].name == "José Peña García"
    assert rows[0].custom == {"apellidos": "Peña García", "nombre": "José"}


def test_a_name_column_wins_over_first_and_last_name():
    rows, _, _ = read(b"name,first name,surname,email\nDr Ana Ruiz,Ana,Ruiz,ana@example.com\n")
    assert rows[0].name == "Dr Ana Ruiz"
    assert rows[0].custom == {"first_name": "Ana", "surname": "Ruiz"}


def test_unknown_columns_become_custom_merge_fields_keyed_by_slug():
    header = "email,Job Title,Ciudad / Región,2024 Spend,,Job-Title,Email"
    rows, _, reader = read(f"{header}\nana@example.com,CEO,Sevilla,100,x,CTO,other@example.com\n".encode())
    assert rows[0].custom == {
        "job_title": "CEO",
        "ciudad_region": "Sevilla",
        "f_2024_spend": "100",
        "column_5": "x",
        "job_title_2": "CTO",
        "email_2": "other@example.com",
    }
    assert reader.custom_fields == list(rows[0].custom)
    assert reader.mapping[:2] == [("email", "email"), ("Job Title", "custom.job_title")]
    assert reader.mapping[-1] == ("Email", "custom.email_2")


def test_cells_are_trimmed_and_short_rows_are_padded():
    rows, errors, _ = read(b"email,name,company,country\n  ana@example.com , Ana  \n")
    assert errors == []
    assert rows == [ProspectRow(2, "ana@example.com", "Ana", "", "", {})]


# --- rows, errors and line numbers --------------------------------------------


def test_bad_rows_are_reported_with_line_and_reason_while_good_rows_come_through():
    data = (
        b"email,name,company\n"  # 1
        b"good1@example.com,One,A\n"  # 2
        b"not-an-address,Two,B\n"  # 3
        b",Three,C\n"  # 4
        b"good2@example.com,Four,D\n"  # 5
        b"x@localhost,Five,E\n"  # 6
        b"six@example.com,Smith, John,F\n"  # 7
        b"good3@example.com\n"  # 8
    )
    rows, errors, reader = read(data)
    assert [(r.line, r.email) for r in rows] == [
        (2, "good1@example.com"),
        (5, "good2@example.com"),
        (8, "good3@example.com"),
    ]
    assert [e.line for e in errors] == [3, 4, 6, 7]
    assert errors[0].reason == f"invalid email address 'not-an-address': {validator_message('not-an-address')}"
    assert errors[0].raw == "not-an-address,Two,B"
    assert errors[1].reason == "missing email address: the email cell is empty"
    assert errors[2].reason == f"invalid email address 'x@localhost': {validator_message('x@localhost')}"
    assert errors[3].reason.startswith("too many columns: 4 values but the header has 3")
    assert "comma (,)" in errors[3].reason
    assert errors[3].raw == "six@example.com,Smith, John,F"
    assert (reader.rows_total, reader.rows_ok, reader.rows_invalid, reader.rows_duplicate) == (7, 3, 4, 0)


def test_quoted_multi_line_fields_keep_physical_line_numbers():
    data = (
        b'email,name,notes\r\n'  # 1
        b'a@example.com,A,"first\r\nsecond\r\nthird"\r\n'  # 2-4
        b'b@example.com,"B\nstill B",plain\r\n'  # 5-6
        b'broken,C,"x\ny"\r\n'  # 7-8
        b'c@example.com,D,\r\n'  # 9
    )
    rows, errors, _ = read(data)
    assert [(r.line, r.email) for r in rows] == [(2, "a@example.com"), (5, "b@example.com"), (9, "c@example.com")]
    assert rows[0].custom == {"notes": "first\r\nsecond\r\nthird"}
    assert rows[1].name == "B\nstill B"
    assert [e.line for e in errors] == [7]
    assert "the row spans lines 7–8" in errors[0].reason


def test_an_unclosed_quote_is_reported_at_the_line_where_it_opens():
    rows, errors, _ = read(b'email,name\na@example.com,A\n"b@example.com,B\nc@example.com,C\n')
    assert [r.line for r in rows] == [2]
    assert [e.line for e in errors] == [3]
    assert "unclosed double quote" in errors[0].reason


def test_blank_lines_and_empty_spreadsheet_rows_are_skipped_not_counted():
    rows, errors, reader = read(b"\n\nemail,name\n\na@example.com,A\n,\n , \n\nb@example.com,B\n,,,\n")
    assert errors == []
    assert [(r.line, r.email) for r in rows] == [(5, "a@example.com"), (9, "b@example.com")]
    assert reader.rows_total == 2


def test_duplicates_are_merged_into_the_first_occurrence_and_counted():
    data = (
        b"email,name\n"
        b"Ana@Example.com,First\n"
        b"bo@example.com,Bo\n"
        b"ana@example.COM,Second\n"
        b"ANA@EXAMPLE.COM,Third\n"
        b"bo@example.com,Bo again\n"
    )
    rows, errors, reader = read(data)
    assert errors == []
    assert [(r.line, r.email, r.name) for r in rows] == [(2, "Ana@example.com", "First"), (3, "bo@example.com", "Bo")]
    assert (reader.rows_total, reader.rows_ok, reader.rows_invalid, reader.rows_duplicate) == (5, 2, 0, 3)


def test_role_mailboxes_are_lowercased_like_email_validator_does():
    rows, _, _ = read(b"email\nInfo@Example.com\nPostMaster@example.com\nInfoDesk@example.com\n")
    assert [r.email for r in rows] == ["info@example.com", "postmaster@example.com", "InfoDesk@example.com"]


def test_internationalized_addresses_are_normalized_by_email_validator():
    rows, errors, _ = read("email\nJosé@Bücher.DE\n".encode())
    assert errors == []
    assert rows[0].email == validate_email("José@Bücher.DE", check_deliverability=False).normalized


def test_the_fast_path_agrees_with_email_validator():
    domains = [
        "example.com", "EXAMPLE.COM", "Sub.Example.co.uk", "a.b", "a..b.com", "-a.com", "a-.com", "x.test",
        "foo.local", "localhost", "foo.onion", "x.invalid", "com", "a.co1", "ab--cd.com", "xn--bcher-kva.de",
        "q.xn--p1ai", "münchen.de", "[1.2.3.4]", "a_b.com", "a" * 63 + ".com", "a" * 64 + ".com",
        ("a" * 60 + ".") * 4 + "com",
    ]
    locals_ = [
        "john", "John.Doe", "info", "SALES", "a+tag", "a..b", ".a", "a.", "=cmd", "o'neil", "josé", "a b",
        '"quoted"', "x" * 64, "x" * 65, "x" * 240, "", "ü",
    ]
    rnd = random.Random(5)
    noise = "abcXYZ019._-+!#'=@é %&*/?^`{|}~\"()<>[]:,;\\"
    addresses = [f"{local}@{domain}" for local in locals_ for domain in domains]
    addresses += ["".join(rnd.choice(noise) for _ in range(rnd.randint(1, 16))) + "@example.com" for _ in range(500)]
    addresses += ["no-at-sign.example.com", "a@b@example.com", "Ana <ana@example.com>"]

    def expected(address: str) -> tuple[str, str]:
        try:
            return validate_email(address, check_deliverability=False).normalized, ""
        except EmailNotValidError as exc:
            return "", str(exc)

    normalizer = _AddressNormalizer()
    mismatches = [a for a in addresses if normalizer.normalize(a) != expected(a)]
    assert mismatches == []
    assert sum(1 for a in addresses if expected(a)[0]) > 50  # the corpus exercises both verdicts


# --- whole-file rejections ----------------------------------------------------


def test_a_file_with_nul_bytes_is_rejected_as_binary():
    message = rejection(b"email,name\nana@example.com\x00\x00\x01,Ana\n")
    assert "binary data" in message
    assert "save it as CSV UTF-8" in message


@pytest.mark.parametrize(
    ("magic", "what"),
    [(b"PK\x03\x04\x14\x00\x06\x00", "Excel workbook (.xlsx)"), (b"%PDF-1.7\n", "PDF"), (b"\xd0\xcf\x11\xe0\xa1", "(.xls)")],
)
def test_spreadsheets_and_documents_are_rejected_with_how_to_save_as_csv(magic, what):
    message = rejection(magic + b"rest of the file")
    assert what in message
    assert "save it as CSV UTF-8" in message


def test_a_file_without_an_email_column_names_the_columns_and_the_fix():
    message = rejection(b"name,mail address 2\nAna,ana@example.com\n")
    assert message.startswith("column 'email' not found; columns are: name, mail address 2. ")
    assert "Rename the address column to email (also accepted: e-mail, correo" in message


def test_a_file_without_a_header_row_says_to_add_one():
    message = rejection(b"ana@example.com,Ana\nbo@example.com,Bo\n")
    assert "looks like data" in message
    assert "Add a header row" in message


@pytest.mark.parametrize("data", [b"", b"   \r\n\n", codecs.BOM_UTF8, codecs.BOM_UTF8 + b"\r\n"])
def test_an_empty_file_is_rejected(data):
    assert rejection(data).startswith("The file is empty.")


@pytest.mark.parametrize("data", [b"email,name\n", b"email,name\r\n\r\n,\r\n", codecs.BOM_UTF8 + b"email"])
def test_a_header_without_rows_is_rejected(data):
    assert rejection(data).startswith("The file has a header row but no data rows.")


def test_a_file_over_the_size_limit_is_rejected_before_reading_with_size_limit_and_advice():
    data = b"email\n" + b"a@example.com\n" * 200
    message = rejection(data, max_bytes=1024)
    assert f"{len(data):,} bytes" in message
    assert "1.0 KB (1,024 bytes)" in message
    assert "Split it into smaller files" in message


def test_an_oversized_stream_of_unknown_size_is_rejected_while_reading():
    data = b"email\n" + b"".join(b"user%d@example.com\n" % i for i in range(20000))
    reader = open_prospect_reader(io.BufferedReader(NonSeekable(data)), max_bytes=100_000)
    assert reader.total_bytes is None
    with pytest.raises(ImportRejected) as caught:
        for _ in reader:
            pass
    assert "100,000 bytes" in caught.value.message
    assert "Split it into smaller files" in caught.value.message


def test_a_stream_of_unknown_size_within_the_limit_is_read_fully():
    data = b"email\n" + b"".join(b"user%d@example.com\n" % i for i in range(20000))
    reader = open_prospect_reader(io.BufferedReader(NonSeekable(data)), max_bytes=len(data))
    assert sum(1 for item in reader if isinstance(item, ProspectRow)) == 20000
    assert reader.bytes_read == len(data)


def test_progress_counts_bytes_read_against_the_known_size():
    data = b"email\n" + b"".join(b"user%d@example.com\n" % i for i in range(20000))
    reader = open_prospect_reader(io.BytesIO(data), max_bytes=None)
    assert reader.total_bytes == len(data)
    assert reader.bytes_read < len(data)
    list(reader)
    assert reader.bytes_read == len(data)


# --- export -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ('=HYPERLINK("http://evil.example","click")', '\'=HYPERLINK("http://evil.example","click")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Ana", "Ana"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_safe_cell_neutralises_formulas(value, safe):
    assert safe_cell(value) == safe


def test_exported_prospects_cannot_run_formulas():
    out = io.StringIO()
    rows = [
        {"email": "ana@example.com", "name": '=HYPERLINK("http://evil.example","x")', "company": "+1",
         "country": "-2", "custom": {"note": "@SUM(1,2)"}},
    ]
    assert write_prospects_csv(rows, out, columns=["email", "name", "company", "country", "note"]) == 1
    text = out.getvalue()
    assert text.startswith("\ufeff")
    parsed = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert parsed == [
        ["email", "name", "company", "country", "note"],
        ["ana@example.com", '\'=HYPERLINK("http://evil.example","x")', "'+1", "'-2", "'@SUM(1,2)"],
    ]


def test_the_error_report_lists_line_reason_and_neutralised_raw():
    out = io.StringIO()
    errors = [RowError(3, "missing email address: the email cell is empty", "=cmd|' /C calc'!A0,Ana")]
    assert write_error_report(errors, out, bom=False) == 1
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["line", "reason", "raw"],
        ["3", "missing email address: the email cell is empty", "'=cmd|' /C calc'!A0,Ana"],
    ]


def test_an_export_imports_back_unchanged():
    originals = [
        ProspectRow(2, "ana@example.com", "Ana Ruiz", "Acme, S.L.", "España", {"job_title": "CEO", "notes": "a\nb"}),
        ProspectRow(3, "bo@example.com", "=Bo", "+Plus", "-", {"job_title": "@handle", "notes": '"quoted"'}),
        ProspectRow(4, "ZoE@example.org", "Zoë", "", "", {"job_title": "", "notes": "-2"}),
    ]
    out = io.StringIO()
    write_prospects_csv(
        (r._asdict() for r in originals), out, columns=["email", "name", "company", "country", "job_title", "notes"]
    )
    rows, errors, _ = read(out.getvalue().encode("utf-8"))
    assert errors == []
    assert [r._replace(line=0) for r in rows] == [r._replace(line=0) for r in originals]
    assert [r.line for r in rows] == [2, 4, 5]  # "a\nb" takes two physical lines


# --- a realistic 10,000-row file ----------------------------------------------


def test_a_10000_row_file_with_bad_rows_duplicates_a_bom_and_latin1_gives_exact_counts_and_lines():
    lines = [codecs.BOM_UTF8 + "Correo electrónico;Nombre;Empresa;País;Ciudad\r\n".encode()]
    line_no = 1
    expected_errors: list[tuple[int, str]] = []
    expected_ok = duplicates = 0
    first_line_of: dict[str, int] = {}
    for i in range(10_000):
        line_no += 1
        if i % 97 == 13:
            address, kind = f"user{i}.example.com", "invalid"
        elif i % 211 == 7:
            address, kind = "", "missing"
        elif i % 50 == 49:
            address, kind = f"USER{i - 49}@Example.com", "duplicate"
        else:
            address, kind = f"user{i}@example.com", "ok"
        if i % 10 == 3:
            # Pasted from a Latin-1 system into an otherwise UTF-8 file.
            row = f"{address};José Peña {i};Compañía Ñandú;España;Málaga\r\n".encode("latin-1")
        elif i % 10 == 6:
            row = f'{address};"Muñoz,\r\nMaría {i}";Acme;España;Cádiz\r\n'.encode()
        else:
            row = f"{address};Ana {i};Acme;Chile;Santiago\r\n".encode()
        lines.append(row)
        start = line_no
        line_no += row.count(b"\n") - 1
        if kind == "invalid":
            expected_errors.append((start, "invalid"))
        elif kind == "missing":
            expected_errors.append((start, "missing"))
        elif kind == "duplicate" and f"user{i - 49}@example.com" in first_line_of:
            duplicates += 1
        else:
            expected_ok += 1
            first_line_of[address.lower()] = start
    data = b"".join(lines)

    rows, errors, reader = read(data)

    assert (reader.rows_total, reader.rows_ok, reader.rows_invalid, reader.rows_duplicate) == (
        10_000, expected_ok, len(expected_errors), duplicates
    )
    assert (expected_ok, len(expected_errors), duplicates) == (9656, 150, 194)
    assert [(e.line, e.reason.split(" ", 1)[0]) for e in errors] == expected_errors
    # Rows 0-5 take lines 2-7, row 6 spans lines 8-9 (a quoted line break).
    assert errors[:2] == [
        RowError(10, "missing email address: the email cell is empty", ";Ana 7;Acme;Chile;Santiago"),
        RowError(
            16,
            f"invalid email address 'user13.example.com': {validator_message('user13.example.com')}",
            "user13.example.com;José Peña 13;Compañía Ñandú;España;Málaga",
        ),
    ]
    assert [r.line for r in rows] == sorted(first_line_of.values())
    by_line = {r.line: r for r in rows}
    latin = by_line[first_line_of["user3@example.com"]]
    assert (latin.name, latin.company, latin.country, latin.custom) == (
        "José Peña 3", "Compañía Ñandú", "España", {"ciudad": "Málaga"}
    )
    assert by_line[first_line_of["user6@example.com"]].name == "Muñoz,\r\nMaría 6"
    assert first_line_of["user9@example.com"] == 12


def test_an_unreadable_header_is_rejected_with_the_fix():
    data = b'"email' + b"x" * 200_000 + b"\nana@example.com\n"
    message = rejection(data)
    assert message.startswith("The header row could not be read as CSV")
    assert "unclosed double quote" in message


def test_an_oversized_value_is_a_row_error_and_reading_goes_on():
    data = b"email,notes\n" + b"a@example.com," + b"n" * 200_000 + b"\nb@example.com,ok\n"
    rows, errors, reader = read(data)
    assert [e.line for e in errors] == [2]
    assert "could not be read as CSV" in errors[0].reason
    assert [(r.line, r.email) for r in rows] == [(3, "b@example.com")]
    assert (reader.rows_total, reader.rows_invalid) == (2, 1)

"""Importing prospect files through ImportJob: exact counts, row errors, merges, rejections, export."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from campaigns import importer, services
from campaigns.models import ImportJob, ImportRowError, Prospect, ProspectList, Suppression

pytestmark = pytest.mark.django_db

ROWS = 10_000


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def messy_file() -> bytes:
    """A UTF-8 file with a BOM, a few Latin-1 lines pasted in, bad rows and duplicates.

    Row i (data line i + 2):
    - i % 100 == 7: an invalid address; i % 100 == 13: no address at all (200 errors)
    - i % 50 == 21: the address of row i - 1 again (200 duplicates in the file)
    - i % 100 == 42: the name written in Latin-1 ("Müller"), not UTF-8
    """
    out = [b"\xef\xbb\xbf", "Email,Nombre,Empresa,País,City\r\n".encode("utf-8")]
    for i in range(ROWS):
        address = f"agent{i}@agency{i % 17}.es"
        name = f"José {i}"
        if i % 100 == 7:
            address = f"not-an-address-{i}"
        elif i % 100 == 13:
            address = ""
        elif i % 50 == 21:
            address = f"agent{i - 1}@agency{(i - 1) % 17}.es"
        line = f"{address},{name},Viajes {i},ES,Sevilla\r\n".encode("utf-8")
        if i % 100 == 42:
            line = f"{address},Müller {i},Reisen {i},DE,München\r\n".encode("latin-1")
        out.append(line)
    return b"".join(out)


def run(plist: ProspectList, data: bytes, name: str = "agencies.csv") -> ImportJob:
    job = services.import_create(prospect_list=plist, upload=io.BytesIO(data), filename=name, run_async=False)
    return importer.run_import(job=job)


def test_a_messy_10000_row_file_imports_with_exact_counts_and_error_lines():
    plist = services.list_create(name="Spain")
    # Already in the list (merged: their empty name is filled), and on the suppression list (skipped).
    Prospect.objects.bulk_create(
        [Prospect(prospect_list=plist, email=f"agent{i}@agency{i}.es", company="Kept Co") for i in range(3)]
    )
    Suppression.objects.bulk_create(
        [Suppression(email=f"agent{i}@agency{i}.es", reason="manual") for i in (3, 4)]
    )

    job = run(plist, messy_file())

    assert job.status == ImportJob.Status.DONE, job.error
    assert job.rows_total == ROWS
    assert job.rows_invalid == 200
    assert job.rows_duplicate == 200 + 3
    assert job.rows_suppressed == 2
    assert job.rows_imported == ROWS - 200 - 203 - 2 == 9595
    assert job.bytes_read == job.total_bytes == len(messy_file()) and job.progress == 100.0
    plist.refresh_from_db()
    assert plist.prospect_count == Prospect.objects.filter(prospect_list=plist).count() == 9598

    errors = list(ImportRowError.objects.filter(job=job).order_by("line").values_list("line", "reason"))
    assert len(errors) == 200
    assert errors[0][0] == 7 + 2 and errors[0][1].startswith("invalid email address 'not-an-address-7'")
    assert errors[1] == (13 + 2, "missing email address: the email cell is empty")
    assert [line for line, _ in errors] == sorted(
        [i + 2 for i in range(ROWS) if i % 100 in (7, 13)]
    )

    merged = Prospect.objects.get(prospect_list=plist, email="agent1@agency1.es")
    assert (merged.name, merged.company, merged.country, merged.custom) == ("José 1", "Kept Co", "ES", {"city": "Sevilla"})
    latin = Prospect.objects.get(prospect_list=plist, email="agent42@agency8.es")
    assert (latin.name, latin.custom) == ("Müller 42", {"city": "München"})
    assert not Prospect.objects.filter(email__in=["agent3@agency3.es", "agent4@agency4.es"]).exists()


def test_the_error_report_lists_every_bad_row_with_its_line_and_raw_text():
    plist = services.list_create(name="Spain")
    job = run(plist, messy_file())

    out = io.StringIO()
    assert importer.write_error_report(job, out) == 200

    rows = list(csv.reader(io.StringIO(out.getvalue().lstrip("\ufeff"))))
    assert rows[0] == ["line", "reason", "raw"]
    assert rows[1][0] == "9" and rows[1][2] == "not-an-address-7,José 7,Viajes 7,ES,Sevilla"
    assert len(rows) == 201


def test_importing_the_same_file_again_only_merges():
    plist = services.list_create(name="Spain")
    data = b"email,name,company\r\na@agency.es,,Alpha\r\nb@agency.es,Bea,\r\n"
    run(plist, data)

    again = run(plist, b"email,name,company,phone\r\na@agency.es,Ana,Other\r\nb@agency.es,Other,Beta\r\n")

    assert (again.rows_imported, again.rows_duplicate) == (0, 2)
    rows = dict(Prospect.objects.filter(prospect_list=plist).values_list("email", "name"))
    assert rows == {"a@agency.es": "Ana", "b@agency.es": "Bea"}
    assert Prospect.objects.get(email="a@agency.es").company == "Alpha"
    assert Prospect.objects.get(email="b@agency.es").company == "Beta"
    plist.refresh_from_db()
    assert plist.prospect_count == 2


def test_a_latin1_semicolon_file_imports_with_its_accents():
    plist = services.list_create(name="Latam")

    job = run(plist, "correo;nombre;empresa;país\r\nana@viajes.mx;Peña Niño;Viajes Él;México\r\n".encode("latin-1"))

    assert job.status == ImportJob.Status.DONE and job.rows_imported == 1
    prospect = Prospect.objects.get(prospect_list=plist)
    assert (prospect.name, prospect.company, prospect.country) == ("Peña Niño", "Viajes Él", "México")


@pytest.mark.parametrize(
    ("data", "fix"),
    [
        pytest.param(b"name,company\r\nAna,Alpha\r\n", "Rename the address column to email", id="no-email-column"),
        pytest.param(b"", "The file is empty", id="empty"),
        pytest.param(b"PK\x03\x04" + b"\x00" * 100, "save it as CSV", id="excel"),
        pytest.param(b"email,name\r\n", "no data rows", id="header-only"),
    ],
)
def test_a_whole_file_problem_rejects_the_file_and_imports_nothing(data, fix):
    plist = services.list_create(name="Spain")

    job = run(plist, data)

    assert job.status == ImportJob.Status.REJECTED
    assert fix in job.error
    assert not Prospect.objects.exists() and not ImportRowError.objects.exists()


def test_a_file_over_the_size_limit_is_refused_before_it_is_stored(settings):
    settings.IMPORT_MAX_BYTES = 1000
    plist = services.list_create(name="Spain")

    job = services.import_create(
        prospect_list=plist, upload=io.BytesIO(b"email\r\n" + b"a@agency.es\r\n" * 100), filename="big.csv"
    )

    assert job.status == ImportJob.Status.REJECTED
    assert "Split it into smaller files" in job.error
    assert job.stored_path == "" and not Prospect.objects.exists()
    assert list(importer.upload_dir().iterdir()) == []


def test_a_stored_upload_is_deleted_once_imported():
    plist = services.list_create(name="Spain")

    job = run(plist, b"email\r\na@agency.es\r\n")

    assert job.status == ImportJob.Status.DONE
    assert not Path(job.stored_path).exists()
    assert list(importer.upload_dir().iterdir()) == []


def test_an_export_reimports_unchanged_and_neutralises_formulas():
    plist = services.list_create(name="Spain")
    run(plist, b"email,name,company,notes\r\na@agency.es,=HYPERLINK(\"x\"),+Alpha,@SUM(A1)\r\nb@agency.es,Bea,-Beta,\r\n")

    out = io.StringIO()
    assert importer.export_list_csv(plist, out) == 2

    rows = list(csv.reader(io.StringIO(out.getvalue().lstrip("\ufeff"))))
    assert rows[0] == ["email", "name", "company", "country", "notes"]
    assert rows[1] == ["a@agency.es", "'=HYPERLINK(\"x\")", "'+Alpha", "", "'@SUM(A1)"]
    copy = services.list_create(name="Copy")
    job = run(copy, out.getvalue().encode("utf-8"))
    assert job.rows_imported == 2
    assert Prospect.objects.get(prospect_list=copy, email="a@agency.es").name == '=HYPERLINK("x")'


@pytest.mark.django_db(transaction=True)
def test_the_command_imports_a_file_and_prints_the_counts(tmp_path):
    # Outside a test transaction, as in real use: on PostgreSQL the chunks are written by a second thread.
    from django.core.management import call_command

    path = tmp_path / "agencies.csv"
    path.write_bytes(messy_file())
    out = io.StringIO()

    call_command("importprospects", str(path), "--list", "Spain", "--errors", str(tmp_path / "errors.csv"), stdout=out)

    text = out.getvalue()
    assert "9,600 imported" in text and "200 invalid" in text and "200 duplicates merged" in text
    assert "line 9: invalid email address 'not-an-address-7'" in text
    assert ProspectList.objects.get(name="Spain").prospect_count == 9600
    assert path.exists(), "a file named on the command line is the user's, never deleted"
    assert (tmp_path / "errors.csv").read_text(encoding="utf-8-sig").count("\n") == 201


def test_an_address_added_to_the_list_during_the_import_counts_as_a_duplicate():
    from campaigns.csvio import ProspectRow

    plist = services.list_create(name="Spain")
    job = ImportJob.objects.create(prospect_list=plist, filename="x.csv")
    writer = importer._ChunkWriter(job)  # the list is empty: the fast path is chosen
    Prospect.objects.create(prospect_list=plist, email="b@agency.es", name="Already")

    rows = [ProspectRow(n, f"{c}@agency.es", "", "", "", {}) for n, c in enumerate("abc", start=2)]
    writer.write(rows, [], importer._Counts(100, 3, 0, 0))

    job.refresh_from_db()
    assert (job.rows_imported, job.rows_duplicate) == (2, 1)
    assert Prospect.objects.get(prospect_list=plist, email="b@agency.es").name == "Already"
    assert Prospect.objects.filter(prospect_list=plist).count() == 3


def test_an_address_already_in_the_list_in_another_case_is_merged_not_added():
    plist = services.list_create(name="Spain")
    # The first import finds the list empty: on PostgreSQL it takes the COPY fast path.
    run(plist, b"email,name,company\r\nana@agency.es,,Alpha\r\n")

    again = run(plist, b"email,name,company\r\nAna@agency.es,Ana,Other\r\nBEA@agency.es,Bea,\r\n")

    assert (again.rows_imported, again.rows_duplicate) == (1, 1)
    rows = dict(Prospect.objects.filter(prospect_list=plist).values_list("email", "name"))
    assert rows == {"ana@agency.es": "Ana", "BEA@agency.es": "Bea"}
    assert Prospect.objects.get(email="ana@agency.es").company == "Alpha"
    plist.refresh_from_db()
    assert plist.prospect_count == 2


def test_an_address_added_in_another_case_during_the_import_counts_as_a_duplicate():
    from campaigns.csvio import ProspectRow

    plist = services.list_create(name="Spain")
    job = ImportJob.objects.create(prospect_list=plist, filename="x.csv")
    writer = importer._ChunkWriter(job)  # the list is empty: the fast path is chosen
    Prospect.objects.create(prospect_list=plist, email="B@agency.es", name="Already")

    rows = [ProspectRow(n, f"{c}@agency.es", "", "", "", {}) for n, c in enumerate("abc", start=2)]
    writer.write(rows, [], importer._Counts(100, 3, 0, 0))

    job.refresh_from_db()
    assert (job.rows_imported, job.rows_duplicate) == (2, 1)
    assert sorted(Prospect.objects.filter(prospect_list=plist).values_list("email", flat=True)) == [
        "B@agency.es", "a@agency.es", "c@agency.es",
    ]


def test_a_list_cannot_hold_two_prospects_whose_addresses_differ_only_in_case():
    from django.db import IntegrityError, transaction

    plist = services.list_create(name="Spain")
    other = services.list_create(name="Portugal")
    Prospect.objects.create(prospect_list=plist, email="ana@agency.es")

    with pytest.raises(IntegrityError), transaction.atomic():
        Prospect.objects.create(prospect_list=plist, email="ANA@agency.es")
    Prospect.objects.create(prospect_list=other, email="ANA@agency.es")

    assert Prospect.objects.count() == 2

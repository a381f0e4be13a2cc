"""An import that spans many write chunks: every good row lands once, bad rows keep their lines,
and the job's counters and progress are what is in the database after every chunk.

The chunk size is cut to 7 rows so a 200-row file takes 27 chunks. The tests run outside a
test transaction, as a real import does, so on PostgreSQL the chunks go through the writer
thread (_ThreadSink) and COPY, and the tests check that they did.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from django.db import connection

from campaigns import importer, services
from campaigns.models import ImportJob, ImportRowError, Prospect, ProspectList, Suppression

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 7
ROWS = 200
# About 1 KB a row, so the 200 KB file is read in several pieces and progress moves chunk by chunk.
PADDING = "x" * 1000
BAD_ADDRESSES = {3, 40, 99, 150, *range(20, 28)}  # 20–27: eight bad rows in a row, more than a chunk
EMPTY_ADDRESS = {60}
DUPLICATES = {50, 110}  # the address of the row before, in capitals
SUPPRESSED = {77}
MULTILINE = 5  # a quoted company with a line break: every later row sits one line further down


@dataclass
class ChunkedFile:
    data: bytes
    errors: dict[int, str]  # line → the start of its reason
    imported: set[str]  # addresses that must end up in the list


def chunked_file() -> ChunkedFile:
    out = ["email,name,company,notes\r\n"]
    errors: dict[int, str] = {}
    imported: set[str] = set()
    line = 2
    for i in range(ROWS):
        address = f"agent{i}@agency.es"
        company = f'"Viajes\n{i}"' if i == MULTILINE else f"Viajes {i}"
        if i in BAD_ADDRESSES:
            address = f"not-an-address-{i}"
            errors[line] = f"invalid email address '{address}'"
        elif i in EMPTY_ADDRESS:
            address = ""
            errors[line] = "missing email address: the email cell is empty"
        elif i in DUPLICATES:
            address = f"AGENT{i - 1}@AGENCY.ES"
        elif i not in SUPPRESSED:
            imported.add(address)
        record = f"{address},José {i},{company},{PADDING}\r\n"
        out.append(record)
        line += 1 + company.count("\n")
    return ChunkedFile(data="".join(out).encode("utf-8"), errors=errors, imported=imported)


@dataclass(frozen=True)
class Snapshot:
    status: str
    bytes_read: int
    total_bytes: int
    progress: float
    rows_total: int
    rows_imported: int
    rows_suppressed: int
    rows_invalid: int
    list_count: int  # ProspectList.prospect_count, read in the same query as the job


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(importer, "CHUNK_ROWS", CHUNK)


@pytest.fixture
def writes(monkeypatch) -> dict[str, list]:
    """Which sink ran the import, and every COPY (PostgreSQL) by target table."""
    seen: dict[str, list] = {"thread_sinks": [], "copies": []}

    class SpySink(importer._ThreadSink):
        def __init__(self, writer):
            seen["thread_sinks"].append(self)
            super().__init__(writer)

    copy_into = importer._ChunkWriter._copy_into

    def spy_copy(self, table, values):
        seen["copies"].append((table, len(values)))
        return copy_into(self, table, values)

    monkeypatch.setattr(importer, "_ThreadSink", SpySink)
    monkeypatch.setattr(importer._ChunkWriter, "_copy_into", spy_copy)
    return seen


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def run_watched(plist: ProspectList, data: bytes) -> tuple[ImportJob, list[Snapshot]]:
    """Run the import, reading the job and its list back from the database at every progress call."""
    job = services.import_create(prospect_list=plist, upload=io.BytesIO(data), filename="agencies.csv", run_async=False)
    snapshots: list[Snapshot] = []

    def watch(_job: ImportJob) -> None:
        # One query, so the job's counters and the list's count come from the same committed state.
        row = ImportJob.objects.select_related("prospect_list").get(pk=job.pk)
        snapshots.append(
            Snapshot(row.status, row.bytes_read, row.total_bytes, row.progress, row.rows_total, row.rows_imported,
                     row.rows_suppressed, row.rows_invalid, row.prospect_list.prospect_count)
        )

    return importer.run_import(job=job, on_progress=watch), snapshots


def test_an_import_over_many_chunks_imports_every_good_row_once_with_exact_counts(writes):
    expected = chunked_file()
    plist = services.list_create(name="Spain")
    Suppression.objects.create(email="agent77@agency.es", reason=Suppression.Reason.MANUAL)

    job, snapshots = run_watched(plist, expected.data)

    assert job.status == ImportJob.Status.DONE, job.error
    assert job.rows_total == ROWS
    assert job.rows_invalid == len(BAD_ADDRESSES) + len(EMPTY_ADDRESS) == 13
    assert job.rows_duplicate == len(DUPLICATES) == 2
    assert job.rows_suppressed == 1
    assert job.rows_imported == ROWS - 13 - 2 - 1 == len(expected.imported) == 184
    assert job.bytes_read == job.total_bytes == len(expected.data) and job.progress == 100.0

    emails = list(Prospect.objects.filter(prospect_list=plist).values_list("email", flat=True))
    assert len(emails) == 184 and set(emails) == expected.imported
    plist.refresh_from_db()
    assert plist.prospect_count == 184
    # The first of the two spellings wins, and the capitalised repeat only merged into it.
    assert Prospect.objects.get(prospect_list=plist, email="agent49@agency.es").name == "José 49"
    assert Prospect.objects.get(prospect_list=plist, email="agent5@agency.es").company == "Viajes\n5"

    errors = list(ImportRowError.objects.filter(job=job).order_by("line").values_list("line", "reason", "raw"))
    assert [line for line, _, _ in errors] == sorted(expected.errors)
    for line, reason, raw in errors:
        assert reason.startswith(expected.errors[line]), (line, reason)
    # Line numbers count physical lines: row 3 is on line 5, row 20 (after the two-line row 5) on line 23.
    assert errors[0][0] == 5 and errors[0][2].startswith("not-an-address-3,José 3,Viajes 3,")
    assert (23, "not-an-address-20") in {(line, raw.split(",")[0]) for line, _, raw in errors}
    assert (63, "") in {(line, raw.split(",")[0]) for line, _, raw in errors}

    # 185 rows reached the writer (the suppressed one too), in 27 chunks: full chunks of 7 rows, except
    # that rows 20-26 fill a chunk with errors first (5 rows and 7 errors, no progress call), row 77's
    # chunk loses it to the suppression list, and the file ends with 5 rows. Progress is reported after
    # each of the 25 full row chunks, then once more when done.
    running, final = snapshots[:-1], snapshots[-1]
    assert len(running) == 25
    assert final.status == ImportJob.Status.DONE and final.progress == 100.0 and final.list_count == 184
    for snapshot in running:
        assert snapshot.status == ImportJob.Status.RUNNING
        # What the dashboard polls is what is really in the list, chunk after chunk.
        assert snapshot.rows_imported == snapshot.list_count
        assert snapshot.total_bytes == len(expected.data)
        assert snapshot.progress == round(100.0 * snapshot.bytes_read / snapshot.total_bytes, 1)
    for earlier, later in zip(snapshots, snapshots[1:]):
        assert earlier.rows_imported <= later.rows_imported
        assert earlier.bytes_read <= later.bytes_read
        assert earlier.rows_total <= later.rows_total
        assert earlier.rows_invalid <= later.rows_invalid
    # The file is read ahead in 64 KB pieces: progress starts low and climbs while chunks are written.
    assert running[0].progress < 50.0 < running[-1].progress
    if not on_postgresql():
        # Written in this thread: each progress call comes after its own chunk's commit.
        assert [s.rows_imported + s.rows_suppressed for s in running] == [7, 14] + [19 + 7 * n for n in range(1, 24)]
        assert running[2].rows_invalid == 9  # rows 3, 20-26 and 27

    if on_postgresql():
        # The writer thread and COPY straight into the table (the list was empty): one COPY per chunk.
        assert len(writes["thread_sinks"]) == 1
        assert writes["copies"] == [(connection.ops.quote_name(Prospect._meta.db_table), n)
                                    for n in [7, 7, 5] + [7] * 6 + [6] + [7] * 16 + [5]]
    else:
        assert writes == {"thread_sinks": [], "copies": []}


def test_a_chunked_import_into_a_filled_list_merges_every_known_address_once(writes):
    expected = chunked_file()
    plist = services.list_create(name="Spain")
    # Already in the list, spread over many chunks of the file, in another case and without a name.
    known = [f"agent{i}@agency.es" for i in range(0, ROWS, 9) if f"agent{i}@agency.es" in expected.imported]
    Prospect.objects.bulk_create(
        [Prospect(prospect_list=plist, email=email.upper(), company="Kept Co") for email in known]
    )
    ProspectList.objects.filter(pk=plist.pk).update(prospect_count=len(known))

    job, snapshots = run_watched(plist, expected.data)

    assert job.status == ImportJob.Status.DONE, job.error
    assert len(known) == 21
    assert job.rows_imported == len(expected.imported) + 1 - len(known) == 164  # agent77 is not suppressed here
    assert job.rows_duplicate == len(DUPLICATES) + len(known)
    assert job.rows_invalid == 13 and job.rows_suppressed == 0
    lowered = [e.lower() for e in Prospect.objects.filter(prospect_list=plist).values_list("email", flat=True)]
    assert len(lowered) == len(set(lowered)) == 185
    assert set(lowered) == expected.imported | {"agent77@agency.es"}
    merged = Prospect.objects.get(prospect_list=plist, email="AGENT90@AGENCY.ES")
    assert (merged.name, merged.company) == ("José 90", "Kept Co")
    plist.refresh_from_db()
    assert plist.prospect_count == 185
    for snapshot in snapshots:
        assert snapshot.list_count == len(known) + snapshot.rows_imported

    if on_postgresql():
        # The list was not empty, so every chunk went through the session's staging table.
        assert len(writes["thread_sinks"]) == 1
        assert {table for table, _ in writes["copies"]} == {importer.STAGING}
        assert sum(n for _, n in writes["copies"]) == 164
    else:
        assert writes == {"thread_sinks": [], "copies": []}

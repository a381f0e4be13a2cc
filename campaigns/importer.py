"""Running an ImportJob: stream the stored upload through campaigns/csvio into the list, in chunks.

The file is never loaded whole: csvio reads it in 64 KB pieces and this module writes
every CHUNK_ROWS prospects in one transaction together with the job's counters, so the
progress the dashboard polls is always what is really in the database.

Whole-file problems (not a CSV, no email column, empty, too big) are all found by
`open_prospect_reader` before the first row is yielded, so a rejected file imports
nothing. Row problems are stored as ImportRowError and the good rows still import.

Merging: an address already in the list (or repeated in the file), in any letter case,
is not a new prospect. The later row only fills the fields that are still empty (name, company,
country, and custom fields missing or blank); it never overwrites what is there.
Addresses on the suppression list are not imported at all and are counted as suppressed.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from .csvio import ImportRejected, ProspectRow, RowError, open_prospect_reader, write_prospects_csv
from .csvio import write_error_report as _write_errors
from .models import ImportJob, ImportRowError, Prospect, ProspectList, Suppression

log = logging.getLogger(__name__)

# Rows per transaction: big enough that commits are a small share, small enough for live progress.
CHUNK_ROWS = 10_000
INSERT_COLUMNS = ("prospect_list_id", "email", "name", "company", "country", "custom", "created_at")
STAGING = "mailops_import_staging"
COPY_BLOCK = 1024 * 1024
BASE_COLUMNS = ["email", "name", "company", "country"]
Status = ImportJob.Status


def max_bytes() -> int:
    return int(getattr(settings, "IMPORT_MAX_BYTES", 200 * 1024 * 1024))


def _size_message(limit: int) -> str:
    return (
        f"The file is larger than the {limit / (1024 * 1024):.0f} MB import limit. "
        "Split it into smaller files (for example 100,000 rows each, keeping the header row in every part) "
        "and import them one by one."
    )


# --- storing an upload -----------------------------------------------------------------------


def upload_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "imports"


def store_upload(*, prospect_list: ProspectList, upload: IO[bytes], filename: str, user: Any = None) -> ImportJob:
    """Copy an upload to disk block by block (stopping at the size limit) and create its job."""
    directory = upload_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.csv"
    limit = max_bytes()
    size = 0
    too_big = False
    with open(path, "wb") as out:
        while True:
            block = upload.read(COPY_BLOCK)
            if not block:
                break
            size += len(block)
            if size > limit:
                too_big = True
                break
            out.write(block)
    job = ImportJob(
        prospect_list=prospect_list,
        filename=(filename or "upload.csv")[:255],
        stored_path=str(path),
        total_bytes=size,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    if too_big:
        path.unlink(missing_ok=True)
        job.stored_path = ""
        job.status = Status.REJECTED
        job.error = _size_message(limit)
        job.finished_at = timezone.now()
    job.save()
    return job


def job_for_file(*, prospect_list: ProspectList, path: str | os.PathLike[str], user: Any = None) -> ImportJob:
    """A job reading a file already on this machine (the importprospects command): no copy is made."""
    path = Path(path).resolve()
    return ImportJob.objects.create(
        prospect_list=prospect_list,
        filename=path.name[:255],
        stored_path=str(path),
        total_bytes=path.stat().st_size,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )


# --- running a job ----------------------------------------------------------------------------


def _finish(job: ImportJob, **fields: Any) -> ImportJob:
    fields.setdefault("finished_at", timezone.now())
    ImportJob.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


def run_import(
    *, job_id: int | None = None, job: ImportJob | None = None, on_progress: Callable[[ImportJob], None] | None = None
) -> ImportJob:
    """Run a pending job to its end (done, rejected or failed); a job already taken is left alone."""
    if job is None:
        job = ImportJob.objects.get(pk=job_id)
    now = timezone.now()
    if not ImportJob.objects.filter(pk=job.pk, status=Status.PENDING).update(status=Status.RUNNING, started_at=now):
        job.refresh_from_db()
        return job
    job.refresh_from_db()
    try:
        return _run(job, on_progress)
    except Exception as exc:
        log.exception("import job %s failed", job.pk)
        _finish(job, status=Status.FAILED, error=f"The import stopped on an internal error ({type(exc).__name__}); "
                                                  "the rows counted as imported are in the list. Try the file again.")
        raise
    finally:
        _discard_upload(job)


def _discard_upload(job: ImportJob) -> None:
    """Delete a copy this module stored; a file named on the command line belongs to its owner."""
    if not job.stored_path:
        return
    path = Path(job.stored_path)
    if path.parent.resolve() == upload_dir().resolve():
        path.unlink(missing_ok=True)


def _run(job: ImportJob, on_progress: Callable[[ImportJob], None] | None) -> ImportJob:
    path = Path(job.stored_path)
    if not job.stored_path or not path.is_file():
        return _finish(job, status=Status.FAILED, error="The uploaded file is no longer on the server; upload it again.")
    size = path.stat().st_size
    if size > max_bytes():
        return _finish(job, status=Status.REJECTED, error=_size_message(max_bytes()), total_bytes=size)
    with open(path, "rb") as stream:
        try:
            # The size is known and checked, so the reader cannot reject the file half-way.
            reader = open_prospect_reader(stream, max_bytes=None)
        except ImportRejected as exc:
            return _finish(job, status=Status.REJECTED, error=exc.message, total_bytes=size)
        writer = _ChunkWriter(job)
        # On PostgreSQL the server does the inserting, so a second thread can wait for it
        # while this one parses the next chunk. Not inside a caller's transaction (its
        # writes must join it), and not on SQLite, whose inserts run in this process.
        threaded = connection.vendor == "postgresql" and not connection.in_atomic_block
        sink = _ThreadSink(writer) if threaded else _InlineSink(writer)
        rows: list[ProspectRow] = []
        errors: list[RowError] = []
        try:
            for item in reader:
                if type(item) is ProspectRow:
                    rows.append(item)
                    if len(rows) >= CHUNK_ROWS:
                        sink.put(rows, errors, _Counts.of(reader))
                        rows, errors = [], []
                        if on_progress is not None:
                            on_progress(writer.job)
                else:
                    errors.append(item)
                    if len(errors) >= CHUNK_ROWS:
                        sink.put(rows, errors, _Counts.of(reader))
                        rows, errors = [], []
            sink.put(rows, errors, _Counts.of(reader))
        finally:
            sink.close()
    if connection.vendor == "postgresql" and writer.imported >= CHUNK_ROWS:
        # Fresh statistics after a bulk load, as PostgreSQL's manual advises: with the new list
        # still estimated at one row, the next import into it (or a campaign start) would walk
        # the whole list for every chunk instead of probing the list's address index.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {writer.prospects}")
    count = Prospect.objects.filter(prospect_list_id=job.prospect_list_id).count()
    ProspectList.objects.filter(pk=job.prospect_list_id).update(prospect_count=count)
    job = _finish(job, status=Status.DONE, bytes_read=size, total_bytes=size)
    if on_progress is not None:
        on_progress(job)
    return job


class _Counts(NamedTuple):
    """The reader's counters when a chunk was cut, so a chunk written later reports its own progress."""

    bytes_read: int
    rows_total: int
    rows_duplicate: int
    rows_invalid: int

    @classmethod
    def of(cls, reader: Any) -> _Counts:
        return cls(reader.bytes_read, reader.rows_total, reader.rows_duplicate, reader.rows_invalid)


class _InlineSink:
    def __init__(self, writer: _ChunkWriter) -> None:
        self.writer = writer

    def put(self, rows: list[ProspectRow], errors: list[RowError], counts: _Counts) -> None:
        self.writer.write(rows, errors, counts)

    def close(self) -> None:
        pass


class _ThreadSink:
    """Hands chunks to one writer thread; the queue holds one chunk, so memory stays flat."""

    def __init__(self, writer: _ChunkWriter) -> None:
        self.writer = writer
        self.queue: queue.Queue[tuple[list[ProspectRow], list[RowError], _Counts] | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name=f"import-job-{writer.job.pk}", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        try:
            while (item := self.queue.get()) is not None:
                if self.error is None:
                    try:
                        self.writer.write(*item)
                    except BaseException as exc:  # noqa: BLE001 — raised again in the parsing thread
                        self.error = exc
        finally:
            connection.close()  # this thread's own connection

    def put(self, rows: list[ProspectRow], errors: list[RowError], counts: _Counts) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((rows, errors, counts))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


_quote = json.encoder.encode_basestring  # the C string escaper json itself uses


def _encode_custom(custom: dict[str, str]) -> str:
    """JSON for a {str: str} dict, several times faster than json.dumps on such small objects."""
    return "{" + ",".join(_quote(k) + ":" + _quote(v) for k, v in custom.items()) + "}"


class _ChunkWriter:
    """Writes one chunk of rows and errors, with the job's counters, in one transaction.

    Per chunk: at most two indexed look-ups (suppressed addresses, addresses already in
    the list) and one executemany INSERT, so the database work stays close to the cost
    of the parse. Look-ups that cannot find anything are skipped: an empty suppression
    list, or a list that was empty when the import began (in-file duplicates never
    reach here; csvio merges them).
    """

    def __init__(self, job: ImportJob) -> None:
        self.job = job
        self.list_id = job.prospect_list_id
        self.duplicates_merged = 0
        self.imported = 0
        self.suppressed = 0
        self.invalid = 0
        self.check_list = Prospect.objects.filter(prospect_list_id=self.list_id).exists()
        self.check_suppression = Suppression.objects.exists()
        qn = connection.ops.quote_name
        self.prospects = qn(Prospect._meta.db_table)
        self.suppressions = qn(Suppression._meta.db_table)
        self.columns = ", ".join(qn(c) for c in INSERT_COLUMNS)
        self.insert_sql = (
            f"INSERT INTO {self.prospects} ({self.columns}) "
            f"VALUES ({', '.join(['%s'] * len(INSERT_COLUMNS))}) ON CONFLICT DO NOTHING"
        )
        self.staging_ready = False

    def _insert(self, values: list[tuple[Any, ...]]) -> int:
        """Insert new prospects, skipping any that exist by now; returns how many were inserted."""
        if connection.vendor == "postgresql":
            return self._insert_by_copy(values)
        with connection.cursor() as cursor:
            cursor.executemany(self.insert_sql, values)
            return cursor.rowcount

    def _insert_by_copy(self, values: list[tuple[Any, ...]]) -> int:
        """COPY into a session-local staging table, then one INSERT … SELECT … ON CONFLICT DO NOTHING.

        COPY cannot skip conflicts itself, and row-by-row or multi-row INSERTs spend their
        time quoting parameters in Python; COPY streams them through psycopg's C code.
        """
        if not self.check_list:
            # The list was empty when the import began and csvio drops repeated addresses, so
            # nothing can conflict: COPY straight into the table. Should another import fill
            # the same list meanwhile, the savepoint undoes this chunk and it goes the safe way.
            try:
                with transaction.atomic():
                    return self._copy_into(self.prospects, values)
            except IntegrityError:
                self.check_list = True
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            if not self.staging_ready:
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} (prospect_list_id bigint, email varchar(320), "
                    "name varchar(200), company varchar(200), country varchar(100), custom jsonb, "
                    "created_at timestamptz)"
                )
                self.staging_ready = True
        self._copy_into(STAGING, values)
        with connection.connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {self.prospects} ({self.columns}) SELECT {self.columns} FROM {STAGING} "
                "ON CONFLICT DO NOTHING"
            )
            inserted = cursor.rowcount
            cursor.execute(f"TRUNCATE {STAGING}")
        return inserted

    def _copy_into(self, table: str, values: list[tuple[Any, ...]]) -> int:
        connection.ensure_connection()
        # Raw psycopg errors become Django's (IntegrityError above) like any ORM query's.
        with connection.wrap_database_errors, connection.connection.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({self.columns}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        return len(values)

    def write(self, rows: list[ProspectRow], errors: list[RowError], counts: _Counts) -> None:
        with transaction.atomic():
            if rows:
                self._write_rows(rows)
            if errors:
                ImportRowError.objects.bulk_create(
                    [ImportRowError(job_id=self.job.pk, line=e.line, reason=e.reason[:500], raw=e.raw) for e in errors],
                    batch_size=1000,
                )
                self.invalid += len(errors)
            self.job.bytes_read = counts.bytes_read
            self.job.rows_total = counts.rows_total
            self.job.rows_imported = self.imported
            self.job.rows_duplicate = counts.rows_duplicate + self.duplicates_merged
            self.job.rows_invalid = counts.rows_invalid
            self.job.rows_suppressed = self.suppressed
            ImportJob.objects.filter(pk=self.job.pk).update(
                bytes_read=self.job.bytes_read,
                rows_total=self.job.rows_total,
                rows_imported=self.job.rows_imported,
                rows_duplicate=self.job.rows_duplicate,
                rows_invalid=self.job.rows_invalid,
                rows_suppressed=self.job.rows_suppressed,
            )

    def _select(self, sql: str, values: list[Any]) -> list[tuple[Any, ...]]:
        """Run `sql` with its "(IN)" replaced by the values, 5,000 at a time (SQLite's parameter limit)."""
        found: list[tuple[Any, ...]] = []
        with connection.cursor() as cursor:
            for start in range(0, len(values), 5000):
                part = values[start : start + 5000]
                cursor.execute(sql.replace("(IN)", "(" + ", ".join(["%s"] * len(part)) + ")"), part)
                found += cursor.fetchall()
        return found

    def _write_rows(self, rows: list[ProspectRow]) -> None:
        suppressed: set[str] = set()
        if self.check_suppression:
            lowered = list({r.email.lower() for r in rows})
            suppressed = {e for (e,) in self._select(f"SELECT email FROM {self.suppressions} WHERE email IN (IN)", lowered)}
        existing: dict[str, dict[str, Any]] = {}
        if self.check_list:
            # Compared lower-cased, as the list's unique index (Prospect.Meta) compares them.
            found = self._select(
                f"SELECT id, email, name, company, country, custom FROM {self.prospects} "
                f"WHERE prospect_list_id = {int(self.list_id)} AND LOWER(email) IN (IN)",
                list({r.email.lower() for r in rows}),
            )
            existing = {
                email.lower(): {"pk": pk, "name": name, "company": company, "country": country,
                                "custom": json.loads(custom) if isinstance(custom, str) else (custom or {})}
                for pk, email, name, company, country, custom in found
            }
        created_at = connection.ops.adapt_datetimefield_value(timezone.now())
        list_id = self.list_id
        fresh: list[tuple[Any, ...]] = []
        merged: list[Prospect] = []
        for row in rows:
            if suppressed and row.email.lower() in suppressed:
                self.suppressed += 1
                continue
            current = existing.get(row.email.lower()) if existing else None
            if current is None:
                fresh.append((list_id, row.email, row.name[:200], row.company[:200], row.country[:100],
                              _encode_custom(row.custom) if row.custom else "{}", created_at))
                continue
            self.duplicates_merged += 1
            update = _merge(current, row)
            if update is not None:
                merged.append(update)
        if fresh:
            inserted = self._insert(fresh)
            # A row that conflicted was added to the list by someone else meanwhile: a duplicate.
            self.duplicates_merged += len(fresh) - inserted
            self.imported += inserted
            ProspectList.objects.filter(pk=self.list_id).update(prospect_count=F("prospect_count") + inserted)
        if merged:
            Prospect.objects.bulk_update(merged, ["name", "company", "country", "custom"], batch_size=500)


def _merge(current: dict[str, Any], row: ProspectRow) -> Prospect | None:
    """The existing prospect with its empty fields filled from `row`, or None when nothing changes."""
    changed = False
    values = {}
    for field, limit in (("name", 200), ("company", 200), ("country", 100)):
        value = current[field]
        new = getattr(row, field)
        if not value and new:
            value, changed = new[:limit], True
        values[field] = value
    custom = dict(current["custom"] or {})
    for key, new in row.custom.items():
        if new and not custom.get(key):
            custom[key] = new
            changed = True
    if not changed:
        return None
    return Prospect(pk=current["pk"], custom=custom, **values)


# --- reports and export -----------------------------------------------------------------------


def row_errors(job: ImportJob) -> Iterator[RowError]:
    for line, reason, raw in job.row_errors.order_by("line", "pk").values_list("line", "reason", "raw").iterator(
        chunk_size=2000
    ):
        yield RowError(line, reason, raw)


def write_error_report(job: ImportJob, fileobj: IO[str]) -> int:
    """The downloadable CSV of bad rows: line, reason, raw (spreadsheet-safe)."""
    return _write_errors(row_errors(job), fileobj)


def export_list_csv(prospect_list: ProspectList, fileobj: IO[str]) -> int:
    """Write the list as CSV (email, name, company, country, then every custom field); formulas are neutralised."""
    prospects = Prospect.objects.filter(prospect_list=prospect_list).order_by("pk")
    keys: dict[str, None] = {}
    for custom in prospects.values_list("custom", flat=True).iterator(chunk_size=5000):
        if custom:
            keys.update(dict.fromkeys(k for k in custom if k not in keys))
    columns = BASE_COLUMNS + [k for k in keys if k not in BASE_COLUMNS]
    rows = prospects.values("email", "name", "company", "country", "custom").iterator(chunk_size=5000)
    return write_prospects_csv(rows, fileobj, columns=columns)

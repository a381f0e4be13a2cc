from __future__ import annotations

import time
from itertools import islice
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns import importer
from campaigns.models import ImportJob, ProspectList
from campaigns.services import list_create

SHOWN_ERRORS = 20


class Command(BaseCommand):
    help = "Import prospects from a CSV/TSV file into a list (created if missing), printing progress and errors."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of the CSV or TSV file")
        parser.add_argument("--list", required=True, dest="list_name", help="name of the prospect list")
        parser.add_argument("--errors", default="", help="also write every bad row to this CSV file")

    def handle(self, *args, file: str, list_name: str, errors: str, **options) -> None:
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        prospect_list = ProspectList.objects.filter(name=list_name).order_by("pk").first()
        if prospect_list is None:
            prospect_list = list_create(name=list_name)
            self.stdout.write(f"created list {prospect_list.name!r} (id {prospect_list.pk})")
        job = importer.job_for_file(prospect_list=prospect_list, path=path)
        started = time.monotonic()

        def progress(job: ImportJob) -> None:
            self.stdout.write(
                f"  {job.progress:5.1f}%  {job.rows_total:,} rows read, {job.rows_imported:,} imported",
                ending="\r" if job.status == ImportJob.Status.RUNNING else "\n",
            )
            self.stdout.flush()

        job = importer.run_import(job=job, on_progress=progress)
        elapsed = time.monotonic() - started
        if job.status == ImportJob.Status.REJECTED:
            raise CommandError(f"file rejected, nothing imported: {job.error}")
        if job.status != ImportJob.Status.DONE:
            raise CommandError(f"import {job.status}: {job.error}")
        rate = job.rows_total / elapsed if elapsed > 0 else 0
        self.stdout.write(
            f"done in {elapsed:.1f}s ({rate:,.0f} rows/s): {job.rows_total:,} rows, {job.rows_imported:,} imported, "
            f"{job.rows_duplicate:,} duplicates merged, {job.rows_invalid:,} invalid, "
            f"{job.rows_suppressed:,} suppressed; the list has {ProspectList.objects.get(pk=prospect_list.pk).prospect_count:,} prospects"
        )
        for error in islice(importer.row_errors(job), SHOWN_ERRORS):
            self.stdout.write(f"  line {error.line}: {error.reason}")
        if job.rows_invalid > SHOWN_ERRORS:
            self.stdout.write(f"  … and {job.rows_invalid - SHOWN_ERRORS:,} more")
        if errors:
            with open(errors, "w", encoding="utf-8", newline="") as out:
                importer.write_error_report(job, out)
            self.stdout.write(f"error report written to {errors}")

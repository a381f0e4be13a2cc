"""Celery tasks: thin wrappers that take ids and call the pipeline's plain functions."""

from __future__ import annotations

from celery import shared_task

from . import dispatch as dispatcher


@shared_task(name="campaigns.dispatch", ignore_result=True)
def dispatch() -> dict[str, object]:
    """One dispatcher run (beat every few seconds, and kicked when a campaign starts or resumes)."""
    report = dispatcher.run_once()
    return {
        "ran": report.ran,
        "claimed": report.total_claimed,
        "batches": report.batches,
        "reclaimed": report.reclaimed,
        "finished": report.finished_campaigns,
    }


# acks_late (the project default) means a batch whose worker is killed is redelivered;
# the redelivered task finds its lease token gone or still valid and acts accordingly,
# never sending a row twice (campaigns/dispatch.take_batch).
@shared_task(name="campaigns.send_batch", ignore_result=True)
def send_batch(server_id: int, message_ids: list[int], lease: str, day: str) -> dict[str, int]:
    return dispatcher.run_batch(server_id=server_id, message_ids=message_ids, lease=lease, day=day)


@shared_task(name="campaigns.import_prospects", ignore_result=True)
def import_prospects(job_id: int) -> dict[str, object]:
    from .importer import run_import

    job = run_import(job_id=job_id)
    return {"status": job.status, "imported": job.rows_imported, "invalid": job.rows_invalid}

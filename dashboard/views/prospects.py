"""Prospects: upload a CSV (the import runs in the worker while the page polls its job), then
the counts and row errors; browse and search lists."""

from __future__ import annotations

import io

from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.text import slugify

from campaigns import importer, services
from campaigns.models import ImportJob, ProspectList
from mailops.errors import DomainError

from ..access import operator_required
from ..forms import SearchForm, UploadForm, add_domain_error
from .common import page, paginate

ERROR_ROWS_SHOWN = 50
RECENT_IMPORTS = 10


def prospects(request: HttpRequest, upload_form: UploadForm | None = None, status: int = 200) -> HttpResponse:
    search = SearchForm(request.GET or None)
    lists = ProspectList.objects.all()
    q = search.cleaned_data.get("q", "") if search.is_valid() else ""
    if q:
        lists = lists.filter(Q(name__icontains=q) | Q(description__icontains=q))
    return page(
        request,
        "dashboard/prospects.html",
        {
            "lists": paginate(request, lists),
            "search": search,
            "q": q,
            "upload_form": upload_form or UploadForm(),
            "imports": ImportJob.objects.select_related("prospect_list")[:RECENT_IMPORTS],
        },
        status=status,
    )


@operator_required
def upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return prospects(request, form, status=422)
    try:
        prospect_list = form.cleaned_data["prospect_list"] or services.list_create(
            name=form.cleaned_data["new_list_name"]
        )
        upload_file = form.cleaned_data["file"]
        job = services.import_create(
            prospect_list=prospect_list, upload=upload_file, filename=upload_file.name, user=request.user
        )
    except DomainError as error:
        add_domain_error(form, error)
        return prospects(request, form, status=422)
    return redirect("dashboard:import-detail", pk=job.pk)


def _job(pk: int) -> ImportJob:
    return get_object_or_404(ImportJob.objects.select_related("prospect_list"), pk=pk)


def _job_context(job: ImportJob) -> dict:
    return {
        "job": job,
        "finished": job.status in (ImportJob.Status.DONE, ImportJob.Status.REJECTED, ImportJob.Status.FAILED),
        "row_errors": list(job.row_errors.all()[:ERROR_ROWS_SHOWN]),
        "more_errors": max(0, job.rows_invalid - ERROR_ROWS_SHOWN),
    }


def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return page(request, "dashboard/import_detail.html", _job_context(_job(pk)))


def import_progress(request: HttpRequest, pk: int) -> HttpResponse:
    return page(request, "dashboard/partials/import_progress.html", _job_context(_job(pk)))


def import_errors_csv(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(pk)
    buffer = io.StringIO()
    importer.write_error_report(job, buffer)
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    name = slugify(job.filename.rsplit(".", 1)[0]) or "import"
    response["Content-Disposition"] = f'attachment; filename="{name}-errors.csv"'
    return response


def list_detail(request: HttpRequest, pk: int) -> HttpResponse:
    prospect_list = get_object_or_404(ProspectList, pk=pk)
    search = SearchForm(request.GET or None)
    q = search.cleaned_data.get("q", "") if search.is_valid() else ""
    rows = prospect_list.prospects.only("email", "name", "company", "country", "created_at")
    count = prospect_list.prospect_count
    if q:
        rows = rows.filter(Q(email__icontains=q) | Q(name__icontains=q) | Q(company__icontains=q))
        count = None
    return page(
        request,
        "dashboard/list_detail.html",
        {"list": prospect_list, "prospects": paginate(request, rows, count=count), "search": search, "q": q},
    )

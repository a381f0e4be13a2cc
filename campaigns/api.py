"""REST views for prospects, imports, campaigns and the suppression list.

Views are thin: validate with an input serializer, call one service (campaigns/services.py,
campaigns/suppression.py, campaigns/importer.py), render with an output serializer.
JSON is camelCase like the seed's endpoints.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from typing import IO

from django.conf import settings
from django.http import FileResponse
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from mailops.api_errors import BAD_REQUEST, COMMON, NOT_FOUND, ErrorOut
from mailops.api_lists import IdFilter, UtcDateTimeFilter
from mailops.errors import DomainError

from . import importer, services, suppression
from .csvio import ImportRejected
from .models import Campaign, ImportJob, ImportRowError, Prospect, ProspectList, Suppression

CSV_RESPONSE = OpenApiResponse(OpenApiTypes.BINARY, description="A CSV file (UTF-8 with BOM, formula-safe cells).")
TOO_LARGE = OpenApiResponse(ErrorOut, description="The upload is larger than IMPORT_MAX_BYTES.")


def csv_download(write: Callable[[IO[str]], object], filename: str) -> FileResponse:
    """Write a CSV to a spooled temporary file and send it; big exports spill to disk, not memory."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
    write(text)
    text.flush()
    text.detach()
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=filename, content_type="text/csv; charset=utf-8")


def stamped(name: str) -> str:
    return f"{name}-{timezone.now():%Y%m%d-%H%M%S}.csv"


class UploadIn(serializers.Serializer):
    file = serializers.FileField(help_text="A CSV (comma, semicolon or tab separated; UTF-8, UTF-16 or Windows-1252).")


class UploadLimitMixin:
    """Refuse an upload larger than IMPORT_MAX_BYTES before Django writes it to a temporary file."""

    upload_actions: tuple[str, ...] = ()

    def initial(self, request, *args, **kwargs):
        if getattr(self, "action", None) in self.upload_actions:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            # Multipart framing adds a little; a body past the limit plus 64 KiB cannot hold a file within it.
            if length > settings.IMPORT_MAX_BYTES + 64 * 1024:
                raise UploadTooLarge()
        return super().initial(request, *args, **kwargs)


class UploadTooLarge(ValidationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE

    def __init__(self) -> None:
        limit = settings.IMPORT_MAX_BYTES
        human = f"{limit / 1024 / 1024:.0f} MB" if limit >= 1024 * 1024 else f"{limit:,} bytes"
        super().__init__(
            {"file": [f"the file is larger than the {human} limit; split it into smaller files and upload each"]}
        )


def _uploaded_file(request):
    data = UploadIn(data=request.data)
    data.is_valid(raise_exception=True)
    upload = data.validated_data["file"]
    if upload.size is not None and upload.size > settings.IMPORT_MAX_BYTES:
        raise UploadTooLarge()
    return upload


# --- lists and prospects -------------------------------------------------------------------------


class ProspectListOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    prospectCount = serializers.IntegerField(source="prospect_count")
    createdAt = serializers.DateTimeField(source="created_at")


class ProspectListIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class ProspectOut(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.CharField()
    name = serializers.CharField()
    company = serializers.CharField()
    country = serializers.CharField()
    custom = serializers.DictField(help_text="Extra CSV columns, usable as merge fields.")
    createdAt = serializers.DateTimeField(source="created_at")


class ImportJobOut(serializers.Serializer):
    id = serializers.IntegerField()
    list = serializers.IntegerField(source="prospect_list_id")
    filename = serializers.CharField()
    status = serializers.ChoiceField(choices=ImportJob.Status.choices)
    progress = serializers.FloatField(help_text="Percent of the file read.")
    error = serializers.CharField(help_text="Why the whole file was rejected, and how to fix it.")
    totalBytes = serializers.IntegerField(source="total_bytes")
    bytesRead = serializers.IntegerField(source="bytes_read")
    rowsTotal = serializers.IntegerField(source="rows_total")
    rowsImported = serializers.IntegerField(source="rows_imported")
    rowsDuplicate = serializers.IntegerField(source="rows_duplicate")
    rowsInvalid = serializers.IntegerField(source="rows_invalid")
    rowsSuppressed = serializers.IntegerField(source="rows_suppressed")
    createdBy = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)


IMPORT_EXAMPLE = {
    "id": 17,
    "list": 4,
    "filename": "prospects-may.csv",
    "status": "running",
    "progress": 42.5,
    "error": "",
    "totalBytes": 18_400_000,
    "bytesRead": 7_820_000,
    "rowsTotal": 81_204,
    "rowsImported": 80_113,
    "rowsDuplicate": 712,
    "rowsInvalid": 301,
    "rowsSuppressed": 78,
    "createdBy": "olivia",
    "createdAt": "2025-05-01T09:00:00Z",
    "startedAt": "2025-05-01T09:00:01Z",
    "finishedAt": None,
}


@extend_schema_view(
    list=extend_schema(summary="Prospect lists", responses={200: ProspectListOut(many=True), **COMMON}),
    retrieve=extend_schema(summary="One list", responses={200: ProspectListOut, 404: NOT_FOUND, **COMMON}),
    create=extend_schema(
        summary="Create an empty list (then upload a CSV to it)",
        request=ProspectListIn,
        responses={201: ProspectListOut, 400: BAD_REQUEST, **COMMON},
        examples=[OpenApiExample("New list", value={"name": "Trade fair 2025", "description": "Badge scans"}, request_only=True)],
    ),
    update=extend_schema(summary="Rename a list", request=ProspectListIn, responses={200: ProspectListOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON}),
    partial_update=extend_schema(summary="Rename a list", request=ProspectListIn, responses={200: ProspectListOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON}),
    destroy=extend_schema(
        summary="Delete a list and its prospects (refused while a campaign uses it)",
        responses={204: None, 404: NOT_FOUND, 409: OpenApiResponse(ErrorOut, description="A campaign uses the list."), **COMMON},
    ),
)
class ProspectListViewSet(UploadLimitMixin, viewsets.ModelViewSet):
    serializer_class = ProspectListOut
    queryset = ProspectList.objects.all()
    search_fields = ["name", "description"]
    ordering_aliases = {"name": "name", "createdAt": "created_at", "prospectCount": "prospect_count"}
    ordering = ["-created_at"]
    filterset_fields: list[str] = []
    lookup_value_regex = r"\d+"
    upload_actions = ("upload",)

    def create(self, request, *args, **kwargs):
        data = ProspectListIn(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.list_create(**data.validated_data)
        return Response(ProspectListOut(created).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        prospect_list = self.get_object()
        data = ProspectListIn(data=request.data, partial=kwargs.get("partial", False) or request.method == "PATCH")
        data.is_valid(raise_exception=True)
        for name, value in data.validated_data.items():
            setattr(prospect_list, name, value.strip() if name == "name" else value)
        if not prospect_list.name:
            raise DomainError("a list needs a name", field="name")
        prospect_list.save(update_fields=list(data.validated_data))
        return Response(ProspectListOut(prospect_list).data)

    @extend_schema(
        summary="Upload a CSV into the list; returns the import job to poll",
        request={"multipart/form-data": UploadIn},
        responses={202: ImportJobOut, 400: BAD_REQUEST, 404: NOT_FOUND, 413: TOO_LARGE, **COMMON},
        examples=[OpenApiExample("Queued", value={**IMPORT_EXAMPLE, "status": "pending", "progress": 0.0}, response_only=True, status_codes=["202"])],
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request, pk=None):
        prospect_list = self.get_object()
        upload = _uploaded_file(request)
        job = services.import_create(
            prospect_list=prospect_list, upload=upload, filename=upload.name or "upload.csv", user=request.user
        )
        return Response(ImportJobOut(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Download the list as CSV", responses={200: CSV_RESPONSE, 404: NOT_FOUND, **COMMON})
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        prospect_list = self.get_object()
        return csv_download(lambda f: importer.export_list_csv(prospect_list, f), stamped(f"list-{prospect_list.pk}"))


class ProspectFilter(filters.FilterSet):
    country = filters.CharFilter()
    company = filters.CharFilter()
    email = filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Prospect
        fields = ["country", "company", "email"]


@extend_schema(summary="A list's prospects", responses={200: ProspectOut(many=True), 404: NOT_FOUND, **COMMON})
class ListProspectsView(generics.ListAPIView):
    serializer_class = ProspectOut
    queryset = Prospect.objects.none()  # the model, for the schema and the filters; get_queryset narrows it
    filterset_class = ProspectFilter
    search_fields = ["email", "name", "company"]
    ordering_aliases = {"email": "email", "name": "name", "company": "company", "country": "country", "createdAt": "created_at"}
    ordering = ["id"]

    def get_queryset(self):
        prospect_list = generics.get_object_or_404(ProspectList, pk=self.kwargs["list_id"])
        return Prospect.objects.filter(prospect_list=prospect_list)


class ImportRowErrorOut(serializers.Serializer):
    line = serializers.IntegerField(help_text="The line in the uploaded file (the header is line 1).")
    reason = serializers.CharField()
    raw = serializers.CharField(help_text="The line as it was in the file.")


class ImportJobFilter(filters.FilterSet):
    list = IdFilter(field_name="prospect_list_id")
    status = filters.ChoiceFilter(choices=ImportJob.Status.choices)

    class Meta:
        model = ImportJob
        fields = ["list", "status"]


@extend_schema_view(
    list=extend_schema(summary="Import jobs, newest first", responses={200: ImportJobOut(many=True), **COMMON}),
    retrieve=extend_schema(
        summary="An import's progress, counts and status",
        responses={200: ImportJobOut, 404: NOT_FOUND, **COMMON},
        examples=[OpenApiExample("Running", value=IMPORT_EXAMPLE, response_only=True)],
    ),
)
class ImportJobViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ImportJobOut
    filterset_class = ImportJobFilter
    search_fields = ["filename"]
    ordering_aliases = {"createdAt": "created_at", "status": "status", "filename": "filename"}
    ordering = ["-created_at"]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return ImportJob.objects.select_related("created_by")

    @extend_schema(
        summary="The row errors as CSV (line, reason, raw)",
        operation_id="imports_errors_csv",
        responses={200: CSV_RESPONSE, 404: NOT_FOUND, **COMMON},
    )
    def errors_csv(self, request, pk=None):
        job = self.get_object()
        return csv_download(lambda f: importer.write_error_report(job, f), stamped(f"import-{job.pk}-errors"))


@extend_schema(summary="The rows an import skipped, and why", responses={200: ImportRowErrorOut(many=True), 404: NOT_FOUND, **COMMON})
class ImportErrorsView(generics.ListAPIView):
    serializer_class = ImportRowErrorOut
    queryset = ImportRowError.objects.none()  # the model, for the schema; get_queryset narrows it
    filterset_fields: list[str] = []
    search_fields = ["reason", "raw"]
    ordering_aliases = {"line": "line", "reason": "reason"}

    def get_queryset(self):
        job = generics.get_object_or_404(ImportJob, pk=self.kwargs["import_id"])
        return ImportRowError.objects.filter(job=job).order_by("line", "pk")


# --- campaigns ----------------------------------------------------------------------------------


class CampaignOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    list = serializers.IntegerField(source="prospect_list_id")
    listName = serializers.CharField(source="prospect_list.name")
    fromName = serializers.CharField(source="from_name")
    fromEmail = serializers.CharField(source="from_email")
    replyTo = serializers.CharField(source="reply_to")
    subject = serializers.CharField()
    htmlBody = serializers.CharField(source="html_body")
    textBody = serializers.CharField(source="text_body")
    scheduledAt = serializers.DateTimeField(source="scheduled_at", allow_null=True)
    dailyMax = serializers.IntegerField(source="daily_max", allow_null=True)
    status = serializers.ChoiceField(choices=Campaign.Status.choices)
    total = serializers.IntegerField()
    sent = serializers.IntegerField()
    deferred = serializers.IntegerField()
    bounced = serializers.IntegerField()
    failed = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    unknown = serializers.IntegerField(help_text="Reply lost after DATA: maybe delivered, never resent.")
    progress = serializers.FloatField()
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)


def _text(**kwargs) -> serializers.CharField:
    # Not trimmed: a trailing CR/LF must reach the header check and be refused, not cut silently.
    return serializers.CharField(trim_whitespace=False, **kwargs)


class CampaignIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    list = serializers.PrimaryKeyRelatedField(source="prospect_list", queryset=ProspectList.objects.all())
    fromEmail = _text(source="from_email", max_length=254)
    fromName = _text(source="from_name", max_length=200, required=False, allow_blank=True)
    replyTo = _text(source="reply_to", max_length=254, required=False, allow_blank=True)
    subject = _text(max_length=500, help_text="Merge fields such as {{ name }} may be used.")
    htmlBody = _text(source="html_body", required=False, allow_blank=True, max_length=2_000_000)
    textBody = _text(source="text_body", required=False, allow_blank=True, max_length=2_000_000)
    scheduledAt = serializers.DateTimeField(source="scheduled_at", required=False, allow_null=True)
    dailyMax = serializers.IntegerField(source="daily_max", required=False, allow_null=True, min_value=1, max_value=10_000_000)


CAMPAIGN_IN_EXAMPLE = {
    "name": "May newsletter",
    "list": 4,
    "fromEmail": "news@example.com",
    "fromName": "Example News",
    "subject": "Hello {{ name }}",
    "htmlBody": "<p>Hi {{ name }},</p><p>…</p>",
    "textBody": "Hi {{ name }}, …",
}


class TestSendIn(serializers.Serializer):
    to = serializers.EmailField(max_length=320, help_text="Where to send the test; merged with the list's first prospect.")


class SendResultOut(serializers.Serializer):
    success = serializers.BooleanField()
    server = serializers.CharField(required=False)
    messageId = serializers.CharField(required=False)
    ipAddress = serializers.CharField(required=False)
    error = serializers.CharField(required=False)
    retryAt = serializers.DateTimeField(required=False, allow_null=True)


class PerServerOut(serializers.Serializer):
    serverId = serializers.IntegerField()
    server = serializers.CharField()
    total = serializers.IntegerField()
    byStatus = serializers.DictField(child=serializers.IntegerField())


class CampaignStatsOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    total = serializers.IntegerField()
    sent = serializers.IntegerField()
    deferred = serializers.IntegerField()
    bounced = serializers.IntegerField()
    failed = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    unknown = serializers.IntegerField()
    queued = serializers.IntegerField()
    waitingRetry = serializers.IntegerField(source="waiting_retry")
    sending = serializers.IntegerField()
    remaining = serializers.IntegerField()
    progress = serializers.FloatField()
    perServer = PerServerOut(source="per_server", many=True)
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    estimatedFinish = serializers.DateTimeField(
        source="estimated_finish", allow_null=True, help_text="Null when the pool has no capacity left or the campaign is not sending."
    )


def _per_server(entries: list[dict]) -> list[dict]:
    return [
        {
            "serverId": e["server_id"],
            "server": e["server"],
            "total": e["total"],
            "byStatus": {k: v for k, v in e.items() if k not in ("server_id", "server", "total")},
        }
        for e in entries
    ]


class CampaignFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=Campaign.Status.choices)
    list = IdFilter(field_name="prospect_list_id")

    class Meta:
        model = Campaign
        fields = ["status", "list"]


@extend_schema_view(
    list=extend_schema(summary="Campaigns", responses={200: CampaignOut(many=True), **COMMON}),
    retrieve=extend_schema(summary="One campaign", responses={200: CampaignOut, 404: NOT_FOUND, **COMMON}),
    create=extend_schema(
        summary="Create a draft campaign",
        request=CampaignIn,
        responses={201: CampaignOut, 400: BAD_REQUEST, **COMMON},
        examples=[OpenApiExample("Draft", value=CAMPAIGN_IN_EXAMPLE, request_only=True)],
    ),
    update=extend_schema(
        summary="Edit a campaign (drafts: anything; paused: content and schedule; running: name and schedule)",
        request=CampaignIn,
        responses={200: CampaignOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON},
    ),
    partial_update=extend_schema(
        summary="Edit some fields of a campaign",
        request=CampaignIn,
        responses={200: CampaignOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON},
        examples=[OpenApiExample("Fix the subject", value={"subject": "Hello {{ name }}!"}, request_only=True)],
    ),
    destroy=extend_schema(summary="Delete a draft (others are cancelled instead, keeping their history)", responses={204: None, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON}),
)
class CampaignViewSet(viewsets.ModelViewSet):
    serializer_class = CampaignOut
    filterset_class = CampaignFilter
    search_fields = ["name", "subject"]
    ordering_aliases = {"name": "name", "createdAt": "created_at", "startedAt": "started_at", "status": "status", "total": "total", "sent": "sent"}
    ordering = ["-created_at"]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return Campaign.objects.select_related("prospect_list")

    def _out(self, campaign: Campaign, code: int = 200) -> Response:
        return Response(CampaignOut(self.get_queryset().get(pk=campaign.pk)).data, status=code)

    def create(self, request, *args, **kwargs):
        data = CampaignIn(data=request.data)
        data.is_valid(raise_exception=True)
        return self._out(services.campaign_create(**data.validated_data), status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        campaign = self.get_object()
        data = CampaignIn(data=request.data, partial=kwargs.get("partial", False))
        data.is_valid(raise_exception=True)
        return self._out(services.campaign_update(campaign=campaign, **data.validated_data))

    def perform_destroy(self, instance: Campaign) -> None:
        # Conditional, so a campaign started a moment ago is not deleted with its messages.
        deleted, _ = Campaign.objects.filter(pk=instance.pk, status=Campaign.Status.DRAFT).delete()
        if not deleted:
            raise DomainError(
                f"only a draft can be deleted; this campaign is {instance.status} — cancel it instead to keep its history",
                field="status",
            )

    def _lifecycle(self, service) -> Response:
        return self._out(service(campaign=self.get_object()))

    @extend_schema(summary="Start: queue a message per prospect (suppressed addresses excluded)", request=None, responses={200: CampaignOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._lifecycle(services.campaign_start)

    @extend_schema(summary="Pause: no new messages leave", request=None, responses={200: CampaignOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._lifecycle(services.campaign_pause)

    @extend_schema(summary="Resume a paused campaign", request=None, responses={200: CampaignOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._lifecycle(services.campaign_resume)

    @extend_schema(summary="Cancel: pending messages are cancelled", request=None, responses={200: CampaignOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._lifecycle(services.campaign_cancel)

    @extend_schema(
        summary="Send the campaign's message once to an address (uses one message of quota)",
        request=TestSendIn,
        responses={200: SendResultOut, 202: SendResultOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON},
        examples=[
            OpenApiExample("To me", value={"to": "olivia@example.com"}, request_only=True),
            OpenApiExample("Sent", value={"success": True, "server": "SMTP Server 2", "messageId": "<3f2a…@example.com>", "ipAddress": "203.0.113.12"}, response_only=True),
        ],
    )
    @action(detail=True, methods=["post"], url_path="test-send")
    def test_send(self, request, pk=None):
        data = TestSendIn(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.campaign_test_send(campaign=self.get_object(), to=data.validated_data["to"])
        return Response(result, status=status.HTTP_200_OK if result.get("success") else status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Counters, where the mail went, and the estimated finish",
        responses={200: CampaignStatsOut, 404: NOT_FOUND, **COMMON},
        examples=[
            OpenApiExample(
                "Half way",
                value={"id": 9, "status": "running", "total": 5000, "sent": 2400, "deferred": 30, "bounced": 41, "failed": 2,
                       "suppressed": 12, "unknown": 0, "queued": 2500, "waitingRetry": 30, "sending": 15, "remaining": 2545,
                       "progress": 49.1, "perServer": [{"serverId": 1, "server": "SMTP Server 1", "total": 1220, "byStatus": {"sent": 1200, "bounced": 20}}],
                       "startedAt": "2025-05-01T09:00:00Z", "finishedAt": None, "estimatedFinish": "2025-05-02T11:30:00Z"},
                response_only=True,
            )
        ],
    )
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        progress = services.campaign_progress(self.get_object())
        progress["per_server"] = _per_server(progress["per_server"])
        return Response(CampaignStatsOut(progress).data)


# --- suppressions ---------------------------------------------------------------------------------


class SuppressionOut(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.CharField()
    reason = serializers.ChoiceField(choices=Suppression.Reason.choices)
    source = serializers.CharField()
    createdAt = serializers.DateTimeField(source="created_at")


class SuppressionIn(serializers.Serializer):
    email = serializers.EmailField(max_length=320)
    reason = serializers.ChoiceField(choices=Suppression.Reason.choices, default=Suppression.Reason.MANUAL)
    source = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class SuppressionImportOut(serializers.Serializer):
    added = serializers.IntegerField()
    already = serializers.IntegerField(help_text="Addresses that were suppressed before.")
    errors = ImportRowErrorOut(many=True, help_text="Rows that were skipped, with the reason.")


class SuppressionFilter(filters.FilterSet):
    reason = filters.ChoiceFilter(choices=Suppression.Reason.choices)
    email = filters.CharFilter(method="by_email")
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Suppression
        fields = ["reason", "email", "since"]

    def by_email(self, queryset, name, value):
        return queryset.filter(email=suppression.normalize(value))


@extend_schema_view(
    list=extend_schema(summary="The suppression list", responses={200: SuppressionOut(many=True), **COMMON}),
    retrieve=extend_schema(summary="One suppression", responses={200: SuppressionOut, 404: NOT_FOUND, **COMMON}),
    destroy=extend_schema(summary="Remove a suppression by id (an operator's correction)", responses={204: None, 404: NOT_FOUND, **COMMON}),
)
class SuppressionViewSet(UploadLimitMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = SuppressionOut
    filterset_class = SuppressionFilter
    search_fields = ["email", "source"]
    ordering_aliases = {"email": "email", "createdAt": "created_at", "reason": "reason"}
    ordering = ["-created_at"]
    lookup_value_regex = r"\d+"
    upload_actions = ("import_csv",)
    queryset = Suppression.objects.all()

    @extend_schema(
        summary="Suppress an address (its queued mail is suppressed at once)",
        request=SuppressionIn,
        responses={201: SuppressionOut, 200: SuppressionOut, 400: BAD_REQUEST, **COMMON},
        examples=[OpenApiExample("Manual", value={"email": "ana@example.com", "reason": "manual", "source": "asked by phone"}, request_only=True)],
    )
    def create(self, request, *args, **kwargs):
        data = SuppressionIn(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data["email"]
        new = suppression.suppress(email, reason=data.validated_data["reason"], source=data.validated_data["source"] or f"api:{request.user.get_username()}")
        row = suppression.reason_for(email)
        return Response(SuppressionOut(row).data, status=status.HTTP_201_CREATED if new else status.HTTP_200_OK)

    def perform_destroy(self, instance: Suppression) -> None:
        suppression.unsuppress(instance.email)

    @extend_schema(summary="Remove a suppression by address", responses={204: None, 404: NOT_FOUND, **COMMON})
    @action(detail=False, methods=["delete"], url_path=r"by-email/(?P<email>[^/]+)")
    def remove_by_email(self, request, email: str = ""):
        if "\x00" in email or not suppression.unsuppress(email):
            return Response({"success": False, "error": f"{email} is not on the suppression list"}, status=status.HTTP_404_NOT_FOUND)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Suppress every address in a CSV (an email column; an optional reason column)",
        request={"multipart/form-data": UploadIn},
        responses={200: SuppressionImportOut, 400: BAD_REQUEST, 413: TOO_LARGE, **COMMON},
    )
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_csv(self, request):
        upload = _uploaded_file(request)
        try:
            summary = suppression.import_csv(upload, source=f"csv import by {request.user.get_username()}: {upload.name}"[:200])
        except ImportRejected as exc:
            raise DomainError(exc.message, field="file") from exc
        return Response(
            SuppressionImportOut(
                {"added": summary.added, "already": summary.already, "errors": [e._asdict() for e in summary.errors[:1000]]}
            ).data
        )

    @extend_schema(summary="Download the suppression list as CSV", responses={200: CSV_RESPONSE, **COMMON})
    @action(detail=False, methods=["get"])
    def export(self, request):
        return csv_download(lambda f: suppression.export_csv(f), stamped("suppressions"))

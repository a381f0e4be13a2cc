"""REST views for the pool's configuration. Views are thin: validate, call one service, render."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery
from django_filters import rest_framework as filters
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from mailops.api_errors import BAD_REQUEST, COMMON, NOT_FOUND, ErrorOut
from mailops.api_lists import IdFilter, UtcDateTimeFilter
from mailops.errors import DomainError

from . import alerts, blocklist, configuration, health, recommendations, services, statistics
from .daytime import sending_day
from .models import (
    Alert,
    BlocklistCheck,
    Configuration,
    Preset,
    Quota,
    RotationStrategy,
    Security,
    Server,
    ServerKind,
    ServerState,
    Tier,
    WarmupSchedule,
)


class MultiServerConfigIn(serializers.Serializer):
    type = serializers.ChoiceField(choices=["preset", "custom"])
    config = serializers.JSONField(
        help_text='A preset key such as "professional", or {name, serverCount, dailyLimitPerServer, '
        "includeSendGrid, sendGridDailyLimit, warmupEnabled, regions}."
    )


class CapacityOut(serializers.Serializer):
    emailsPerDay = serializers.IntegerField()
    emailsPerMonth = serializers.IntegerField()


class CostOut(serializers.Serializer):
    monthly = serializers.FloatField()
    setup = serializers.FloatField()


class ConfigurationOut(serializers.Serializer):
    name = serializers.CharField()
    tier = serializers.CharField()
    capacity = CapacityOut()
    servers = serializers.IntegerField()
    cost = CostOut()


class MultiServerConfigOut(serializers.Serializer):
    success = serializers.BooleanField()
    configuration = ConfigurationOut()


class PresetWarmupOut(serializers.Serializer):
    schedule = serializers.CharField()
    days = serializers.IntegerField()


class PresetOut(ConfigurationOut):
    key = serializers.CharField()
    recommended = serializers.BooleanField()
    dailyLimitPerServer = serializers.IntegerField()
    sendGridDailyLimit = serializers.IntegerField()
    costPer1000 = serializers.FloatField()
    regions = serializers.ListField(child=serializers.CharField())
    routingRules = serializers.DictField(child=serializers.CharField())
    warmup = PresetWarmupOut()
    delaySeconds = serializers.FloatField()
    bestFor = serializers.CharField()


class MultiServerConfigView(APIView):
    """The seed's endpoint: apply a preset or a custom configuration."""

    @extend_schema(
        request=MultiServerConfigIn,
        responses={200: MultiServerConfigOut, 400: ErrorOut},
        examples=[
            OpenApiExample("Preset", value={"type": "preset", "config": "professional"}, request_only=True),
            OpenApiExample(
                "Custom",
                value={
                    "type": "custom",
                    "config": {"name": "My Custom Setup", "serverCount": 8, "dailyLimitPerServer": 600, "includeSendGrid": True},
                },
                request_only=True,
            ),
            OpenApiExample(
                "Result",
                value={
                    "success": True,
                    "configuration": {
                        "name": "Professional - Five Servers",
                        "tier": "professional",
                        "capacity": {"emailsPerDay": 2500, "emailsPerMonth": 75000},
                        "servers": 5,
                        "cost": {"monthly": 125, "setup": 50},
                    },
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request):
        data = MultiServerConfigIn(data=request.data)
        data.is_valid(raise_exception=True)
        kind, value = data.validated_data["type"], data.validated_data["config"]
        if kind == "preset" and not isinstance(value, str):
            raise DomainError('config must be a preset key such as "professional" when type is "preset"', field="config")
        config = configuration.change_configuration(kind, value)
        return Response({"success": True, "configuration": configuration.configuration_summary(config)})


# `?ordering=` names for the presets list (a plain array, as in the seed: 15 rows need no pages).
PRESET_ORDERING = {
    "key": lambda p: p["key"],
    "servers": lambda p: p["servers"],
    "emailsPerDay": lambda p: p["capacity"]["emailsPerDay"],
    "monthlyCost": lambda p: p["cost"]["monthly"],
    "costPer1000": lambda p: p["costPer1000"],
}
PRESET_EXAMPLE = {
    "key": "professional",
    "name": "Professional - Five Servers",
    "tier": "professional",
    "recommended": True,
    "capacity": {"emailsPerDay": 2500, "emailsPerMonth": 75000},
    "servers": 5,
    "dailyLimitPerServer": 500,
    "sendGridDailyLimit": 0,
    "cost": {"monthly": 125, "setup": 50},
    "costPer1000": 1.67,
    "regions": [],
    "routingRules": {},
    "warmup": {"schedule": "default-6-day", "days": 6},
    "delaySeconds": 0.0,
    "bestFor": "Mid-sized companies, regular campaigns",
}


class PresetListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("tier", str, enum=[t for t in Tier.values if t != Tier.CUSTOM], description="Only this tier"),
            OpenApiParameter("recommended", bool, description="true: only the ★ recommended preset of each tier"),
            OpenApiParameter(
                "ordering", str, description="Comma-separated, '-' for descending: " + ", ".join(PRESET_ORDERING),
                examples=[OpenApiExample("Cheapest per 1,000 first", value="costPer1000")],
            ),
        ],
        responses={200: PresetOut(many=True), 400: ErrorOut},
        examples=[OpenApiExample("Presets", value=[PRESET_EXAMPLE], response_only=True)],
    )
    def get(self, request):
        presets = [configuration.preset_summary(p) for p in configuration.get_presets().values()]
        tier = request.query_params.get("tier")
        if tier is not None:
            tiers = sorted({p["tier"] for p in presets})
            if tier not in tiers:
                raise DomainError(f"unknown tier {tier!r}; tiers are: {', '.join(tiers)}", field="tier")
            presets = [p for p in presets if p["tier"] == tier]
        recommended = request.query_params.get("recommended")
        if recommended is not None:
            if recommended.lower() not in ("true", "false"):
                raise DomainError("recommended must be true or false", field="recommended")
            presets = [p for p in presets if p["recommended"] == (recommended.lower() == "true")]
        # Stable sorts applied last term first: the first term decides, later ones break its ties.
        terms = [t.strip() for t in request.query_params.get("ordering", "").split(",") if t.strip().lstrip("-") in PRESET_ORDERING]
        for term in reversed(terms):
            presets.sort(key=PRESET_ORDERING[term.lstrip("-")], reverse=term.startswith("-"))
        return Response(presets)


class PresetRecommendationView(APIView):
    """The FAQ's answer to "how many servers do I need?"."""

    @extend_schema(
        parameters=[OpenApiParameter("emailsPerDay", int, required=True, description="Expected emails per day")],
        responses={200: inline_serializer("PresetRecommendation", {"emailsPerDay": serializers.IntegerField(), "preset": PresetOut()}), 400: ErrorOut},
        examples=[OpenApiExample("2,000 a day", value={"emailsPerDay": 2000, "preset": PRESET_EXAMPLE}, response_only=True)],
    )
    def get(self, request):
        raw = request.query_params.get("emailsPerDay", "")
        try:
            volume = int(raw)
        except ValueError:
            raise DomainError("emailsPerDay must be a whole number, e.g. ?emailsPerDay=2000", field="emailsPerDay") from None
        key = configuration.recommend_preset(volume)
        preset = configuration.get_presets()[key]
        return Response({"emailsPerDay": volume, "preset": configuration.preset_summary(preset)})


# --- the active configuration ----------------------------------------------------------------


class ConfigurationStateOut(serializers.Serializer):
    name = serializers.CharField()
    key = serializers.CharField(help_text='The preset key, or "custom".')
    tier = serializers.CharField()
    capacity = serializers.SerializerMethodField()
    servers = serializers.IntegerField(source="server_count")
    dailyLimitPerServer = serializers.IntegerField(source="daily_limit_per_server")
    includeSendGrid = serializers.BooleanField(source="include_sendgrid")
    sendGridDailyLimit = serializers.IntegerField(source="sendgrid_daily_limit")
    regions = serializers.ListField(child=serializers.CharField())
    cost = serializers.SerializerMethodField()
    rotationStrategy = serializers.ChoiceField(source="rotation_strategy", choices=RotationStrategy.choices)
    warmupEnabled = serializers.BooleanField(source="warmup_enabled")
    warmupSchedule = serializers.CharField(source="warmup_schedule.key")
    healthCheckIntervalSeconds = serializers.IntegerField(source="health_check_interval_seconds")
    healthFailuresToDown = serializers.IntegerField(source="health_failures_to_down")
    blocklistIntervalSeconds = serializers.IntegerField(source="blocklist_interval_seconds")
    routingRules = serializers.DictField(source="routing_rules", child=serializers.CharField())
    strictRouting = serializers.BooleanField(source="strict_routing")
    minDelaySeconds = serializers.FloatField(source="min_delay_seconds")
    activatedAt = serializers.DateTimeField(source="activated_at")

    @extend_schema_field(CapacityOut)
    def get_capacity(self, config: Configuration) -> dict:
        return configuration.configuration_summary(config)["capacity"]

    @extend_schema_field(CostOut)
    def get_cost(self, config: Configuration) -> dict:
        return configuration.configuration_summary(config)["cost"]


def _limit(name: str) -> dict:
    low, high = services.LIMITS[name]
    return {"min_value": low, "max_value": high}


class ConfigurationIn(serializers.Serializer):
    """Every field is optional: the ones sent change, the rest keep their value."""

    name = serializers.CharField(required=False, max_length=120)
    rotationStrategy = serializers.ChoiceField(source="rotation_strategy", choices=RotationStrategy.choices, required=False)
    warmupEnabled = serializers.BooleanField(source="warmup_enabled", required=False)
    healthCheckIntervalSeconds = serializers.IntegerField(
        source="health_check_interval_seconds", required=False, **_limit("health_check_interval_seconds")
    )
    healthFailuresToDown = serializers.IntegerField(source="health_failures_to_down", required=False, **_limit("health_failures_to_down"))
    blocklistIntervalSeconds = serializers.IntegerField(
        source="blocklist_interval_seconds", required=False, **_limit("blocklist_interval_seconds")
    )
    routingRules = serializers.DictField(
        source="routing_rules",
        child=serializers.CharField(max_length=20),
        required=False,
        help_text='Recipient domain suffix → region, e.g. {".es": "EU", ".com": "US"}. Empty turns routing off.',
    )
    strictRouting = serializers.BooleanField(
        source="strict_routing",
        required=False,
        help_text="Hold a region's mail when its servers are exhausted instead of using other regions.",
    )
    minDelaySeconds = serializers.FloatField(source="min_delay_seconds", required=False, **_limit("min_delay_seconds"))


CONFIGURATION_EXAMPLE = {
    "name": "Professional - Five Servers",
    "key": "professional",
    "tier": "professional",
    "capacity": {"emailsPerDay": 2500, "emailsPerMonth": 75000},
    "servers": 5,
    "dailyLimitPerServer": 500,
    "includeSendGrid": False,
    "sendGridDailyLimit": 0,
    "regions": [],
    "cost": {"monthly": 125, "setup": 50},
    "rotationStrategy": "round-robin",
    "warmupEnabled": True,
    "warmupSchedule": "default-6-day",
    "healthCheckIntervalSeconds": 300,
    "healthFailuresToDown": 2,
    "blocklistIntervalSeconds": 3600,
    "routingRules": {},
    "strictRouting": False,
    "minDelaySeconds": 0.0,
    "activatedAt": "2025-05-01T09:00:00Z",
}


class ActiveConfigurationView(APIView):
    """The active pool's settings. PUT changes the runtime settings; the sweeps and the dispatcher use them on their next run."""

    @extend_schema(
        responses={200: ConfigurationStateOut, 400: BAD_REQUEST, **COMMON},
        examples=[OpenApiExample("Active configuration", value=CONFIGURATION_EXAMPLE, response_only=True)],
    )
    def get(self, request):
        return Response(ConfigurationStateOut(services.active_configuration_or_error()).data)

    @extend_schema(
        request=ConfigurationIn,
        responses={200: ConfigurationStateOut, 400: BAD_REQUEST, **COMMON},
        examples=[
            OpenApiExample(
                "Least-used rotation, geographic routing",
                value={"rotationStrategy": "least-used", "routingRules": {".es": "EU", ".com": "US"}, "strictRouting": False},
                request_only=True,
            )
        ],
    )
    def put(self, request):
        data = ConfigurationIn(data=request.data)
        data.is_valid(raise_exception=True)
        config = services.configuration_update(changes=dict(data.validated_data))
        return Response(ConfigurationStateOut(configuration.active_configuration() or config).data)


class SaveAsPresetIn(serializers.Serializer):
    key = serializers.SlugField(max_length=50, help_text="The new preset's key, e.g. my-pool.")
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, help_text="Defaults to the configuration's name.")


class SaveAsPresetView(APIView):
    """Keep the active configuration as a preset of its own, to load again later."""

    @extend_schema(
        request=SaveAsPresetIn,
        responses={201: PresetOut, 400: BAD_REQUEST, **COMMON},
        examples=[OpenApiExample("Save", value={"key": "my-pool", "name": "My pool"}, request_only=True)],
    )
    def post(self, request):
        data = SaveAsPresetIn(data=request.data)
        data.is_valid(raise_exception=True)
        preset = configuration.save_as_preset(
            configuration=services.active_configuration_or_error(),
            key=data.validated_data["key"],
            name=data.validated_data.get("name", ""),
        )
        preset = Preset.objects.select_related("warmup_schedule").get(pk=preset.pk)
        return Response(configuration.preset_summary(preset), status=status.HTTP_201_CREATED)


# --- servers -------------------------------------------------------------------------------------


class ServerOut(serializers.Serializer):
    """A server as the API shows it. Secrets never appear: only whether one is stored."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=ServerKind.choices)
    slot = serializers.IntegerField()
    inPool = serializers.BooleanField(source="in_pool")
    host = serializers.CharField()
    port = serializers.IntegerField()
    security = serializers.ChoiceField(choices=Security.choices)
    verifyTls = serializers.BooleanField(source="verify_tls")
    username = serializers.CharField()
    hasPassword = serializers.SerializerMethodField()
    hasApiKey = serializers.SerializerMethodField()
    ipAddress = serializers.IPAddressField(source="ip_address", allow_null=True)
    bindSourceAddress = serializers.BooleanField(source="bind_source_address")
    heloName = serializers.CharField(source="helo_name")
    region = serializers.CharField()
    priority = serializers.IntegerField()
    dailyLimit = serializers.IntegerField(source="daily_limit")
    minDelaySeconds = serializers.FloatField(source="min_delay_seconds")
    state = serializers.ChoiceField(choices=ServerState.choices)
    stateReason = serializers.CharField(source="state_reason")
    stateChangedAt = serializers.DateTimeField(source="state_changed_at")
    reputation = serializers.FloatField()
    warmupEnabled = serializers.BooleanField(source="warmup_enabled")
    warmupStartedOn = serializers.DateField(source="warmup_started_on")
    warmupManualAdvance = serializers.IntegerField(source="warmup_manual_advance")
    warmupSchedule = serializers.CharField(source="warmup_schedule.key", allow_null=True, default=None)
    warmupDay = serializers.SerializerMethodField()
    inWarmup = serializers.SerializerMethodField()
    fullCapacityOn = serializers.SerializerMethodField()
    capToday = serializers.SerializerMethodField()
    sentToday = serializers.SerializerMethodField()
    consecutiveHealthFailures = serializers.IntegerField(source="consecutive_health_failures")
    lastHealthCheckAt = serializers.DateTimeField(source="last_health_check_at", allow_null=True)
    lastHealthOk = serializers.BooleanField(source="last_health_ok", allow_null=True)
    suspectUntil = serializers.DateTimeField(source="suspect_until", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    def get_hasPassword(self, server: Server) -> bool:
        return bool(server.password)

    def get_hasApiKey(self, server: Server) -> bool:
        return bool(server.api_key)

    def get_warmupDay(self, server: Server) -> int | None:
        return server.warmup_day() if server.warmup_enabled else None

    def get_inWarmup(self, server: Server) -> bool:
        return server.in_warmup()

    @extend_schema_field(serializers.DateField(allow_null=True))
    def get_fullCapacityOn(self, server: Server):
        return server.full_capacity_on()

    def get_capToday(self, server: Server) -> int:
        return server.cap_for()

    def get_sentToday(self, server: Server) -> int:
        used = getattr(server, "sent_today", None)
        if used is None:
            used = Quota.objects.filter(server=server, day=sending_day()).values_list("used", flat=True).first()
        return used or 0


class ServerIn(serializers.Serializer):
    """Fields for creating or changing a server. Omitted fields keep their value.

    `password` and `apiKey` are write-only; a blank value keeps the stored secret, and
    `clearSecrets` removes one on purpose.
    """

    kind = serializers.ChoiceField(choices=ServerKind.choices, required=False, help_text="Only when creating; smtp by default.")
    slot = serializers.IntegerField(min_value=1, max_value=100_000, required=False, help_text="Only when creating; the next free one by default.")
    name = serializers.CharField(max_length=100, required=False)
    inPool = serializers.BooleanField(source="in_pool", required=False)
    host = serializers.CharField(max_length=255, required=False, allow_blank=True)
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False)
    security = serializers.ChoiceField(choices=Security.choices, required=False)
    verifyTls = serializers.BooleanField(source="verify_tls", required=False)
    username = serializers.CharField(max_length=255, required=False, allow_blank=True)
    password = serializers.CharField(
        max_length=1000, required=False, allow_blank=True, write_only=True, trim_whitespace=False, style={"input_type": "password"}
    )
    apiKey = serializers.CharField(
        source="api_key", max_length=1000, required=False, allow_blank=True, write_only=True, trim_whitespace=False,
        style={"input_type": "password"},
    )
    clearSecrets = serializers.ListField(
        child=serializers.ChoiceField(choices=["password", "apiKey"]), required=False, write_only=True,
        help_text="Remove these stored secrets (only when changing a server).",
    )
    ipAddress = serializers.IPAddressField(source="ip_address", required=False, allow_null=True)
    bindSourceAddress = serializers.BooleanField(source="bind_source_address", required=False)
    heloName = serializers.CharField(source="helo_name", max_length=255, required=False, allow_blank=True)
    region = serializers.CharField(max_length=20, required=False, allow_blank=True)
    priority = serializers.IntegerField(min_value=1, max_value=2, required=False)
    dailyLimit = serializers.IntegerField(source="daily_limit", min_value=0, max_value=1_000_000, required=False)
    minDelaySeconds = serializers.FloatField(source="min_delay_seconds", min_value=0, max_value=3600, required=False)
    warmupEnabled = serializers.BooleanField(source="warmup_enabled", required=False)
    warmupStartedOn = serializers.DateField(source="warmup_started_on", required=False)
    warmupSchedule = serializers.SlugRelatedField(
        source="warmup_schedule", slug_field="key", queryset=WarmupSchedule.objects.all(), required=False, allow_null=True
    )


SERVER_EXAMPLE = {
    "id": 3,
    "name": "SMTP Server 3",
    "kind": "smtp",
    "slot": 3,
    "inPool": True,
    "host": "smtp3.example.net",
    "port": 587,
    "security": "starttls",
    "verifyTls": True,
    "username": "relay3",
    "hasPassword": True,
    "hasApiKey": False,
    "ipAddress": "203.0.113.13",
    "bindSourceAddress": False,
    "heloName": "mta3.example.com",
    "region": "EU",
    "priority": 1,
    "dailyLimit": 500,
    "minDelaySeconds": 0.0,
    "state": "active",
    "stateReason": "",
    "stateChangedAt": "2025-05-01T09:00:00Z",
    "reputation": 97.5,
    "warmupEnabled": True,
    "warmupStartedOn": "2025-05-01",
    "warmupManualAdvance": 0,
    "warmupSchedule": "default-6-day",
    "warmupDay": 3,
    "inWarmup": True,
    "fullCapacityOn": "2025-05-06",
    "capToday": 200,
    "sentToday": 42,
    "consecutiveHealthFailures": 0,
    "lastHealthCheckAt": "2025-05-03T10:05:00Z",
    "lastHealthOk": True,
    "suspectUntil": None,
    "createdAt": "2025-05-01T09:00:00Z",
}


class ServerFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=ServerKind.choices)
    state = filters.ChoiceFilter(choices=ServerState.choices)
    region = filters.CharFilter()
    inPool = filters.BooleanFilter(field_name="in_pool")
    priority = IdFilter()

    class Meta:
        model = Server
        fields = ["kind", "state", "region", "inPool", "priority"]


class PauseIn(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class HealthCheckOut(serializers.Serializer):
    id = serializers.IntegerField()
    server = serializers.IntegerField(source="server_id")
    checkedAt = serializers.DateTimeField(source="checked_at")
    ok = serializers.BooleanField()
    stage = serializers.CharField(help_text="The stage that failed: connect, tls, auth, …")
    error = serializers.CharField()
    latencyMs = serializers.FloatField(source="latency_ms", allow_null=True)


class ZoneResultOut(serializers.Serializer):
    zone = serializers.CharField()
    status = serializers.ChoiceField(choices=BlocklistCheck.Status.choices)
    codes = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField()
    error = serializers.CharField()


class BlocklistCheckOut(serializers.Serializer):
    server = serializers.IntegerField()
    ipAddress = serializers.CharField()
    listed = serializers.BooleanField()
    action = serializers.CharField(help_text='"paused", "resumed" or "" (no change).')
    state = serializers.ChoiceField(choices=ServerState.choices)
    results = ZoneResultOut(many=True)


def _server_changes(validated: dict) -> dict:
    clear = {"apiKey": "api_key"}
    changes = dict(validated)
    changes.pop("kind", None)
    changes.pop("slot", None)
    if "clearSecrets" in changes:
        changes["clear_secrets"] = [clear.get(name, name) for name in changes.pop("clearSecrets")]
    return changes


@extend_schema_view(
    list=extend_schema(summary="List servers", responses={200: ServerOut(many=True), **COMMON}),
    retrieve=extend_schema(summary="One server", responses={200: ServerOut, 404: NOT_FOUND, **COMMON}),
    destroy=extend_schema(summary="Delete a server outside the pool (its history goes too)", responses={204: None, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON}),
)
class ServerViewSet(viewsets.ModelViewSet):
    """The relay pool: SMTP servers and SendGrid. Credentials are write-only."""

    serializer_class = ServerOut
    filterset_class = ServerFilter
    search_fields = ["name", "host", "ip_address", "region"]
    ordering_aliases = {
        "name": "name",
        "slot": "slot",
        "priority": "priority",
        "state": "state",
        "reputation": "reputation",
        "region": "region",
        "dailyLimit": "daily_limit",
        "createdAt": "created_at",
        "sentToday": "sent_today",
    }
    ordering = ["priority", "kind", "slot"]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        today = Quota.objects.filter(server=OuterRef("pk"), day=sending_day()).values("used")[:1]
        return Server.objects.select_related("warmup_schedule").annotate(sent_today=Subquery(today))

    def _out(self, server: Server, code: int = 200) -> Response:
        return Response(ServerOut(self.get_queryset().get(pk=server.pk)).data, status=code)

    @extend_schema(
        summary="Add a server",
        request=ServerIn,
        responses={201: ServerOut, 400: BAD_REQUEST, **COMMON},
        examples=[
            OpenApiExample(
                "An SMTP relay",
                value={"name": "SMTP Server 6", "host": "smtp6.example.net", "port": 587, "security": "starttls", "username": "relay6", "password": "write-only", "ipAddress": "203.0.113.16", "region": "EU"},
                request_only=True,
            ),
            OpenApiExample("Created", value=SERVER_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def create(self, request, *args, **kwargs):
        data = ServerIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if values.pop("clearSecrets", None):
            raise DomainError("clearSecrets only applies when changing a server", field="clearSecrets")
        server = services.server_create(kind=values.pop("kind", ServerKind.SMTP), slot=values.pop("slot", None), **values)
        return self._out(server, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a server (omitted fields keep their value; a blank secret keeps the stored one)",
        request=ServerIn,
        responses={200: ServerOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON},
        examples=[OpenApiExample("New password", value={"password": "new-secret"}, request_only=True)],
    )
    def update(self, request, *args, **kwargs):
        server = self.get_object()
        data = ServerIn(data=request.data)
        data.is_valid(raise_exception=True)
        for fixed in ("kind", "slot"):
            if fixed in data.validated_data and data.validated_data[fixed] != getattr(server, fixed):
                raise DomainError(f"{fixed} cannot change; add a new server instead", field=fixed)
        server = services.server_update(server=server, **_server_changes(data.validated_data))
        return self._out(server)

    @extend_schema(
        summary="Change some fields of a server",
        request=ServerIn,
        responses={200: ServerOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON},
    )
    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, **kwargs)

    def perform_destroy(self, instance: Server) -> None:
        services.server_delete(server=instance)

    @extend_schema(summary="Pause (no traffic until resumed)", request=PauseIn, responses={200: ServerOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        data = PauseIn(data=request.data)
        data.is_valid(raise_exception=True)
        return self._out(services.server_pause(server=self.get_object(), reason=data.validated_data.get("reason", "")))

    @extend_schema(summary="Resume a server an operator paused", request=None, responses={200: ServerOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._out(services.server_resume(server=self.get_object()))

    @extend_schema(
        summary="Skip one warm-up day (not recommended: it raises today's cap)",
        request=None,
        responses={200: ServerOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON},
    )
    @action(detail=True, methods=["post"], url_path="advance-warmup")
    def advance_warmup(self, request, pk=None):
        return self._out(configuration.advance_warmup_day(self.get_object()))

    @extend_schema(
        summary="Run a health check now",
        request=None,
        responses={200: HealthCheckOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON},
        examples=[OpenApiExample("Failed at AUTH", value={"id": 812, "server": 3, "checkedAt": "2025-05-03T10:05:00Z", "ok": False, "stage": "auth", "error": "535 5.7.8 authentication failed", "latencyMs": 84.2}, response_only=True)],
    )
    @action(detail=True, methods=["post"], url_path="health-check")
    def health_check(self, request, pk=None):
        server = self.get_object()
        if not server.is_configured:
            raise DomainError(f"{server.name} has no host (or API key) to check; configure it first", field="host")
        return Response(HealthCheckOut(health.check_server(server)).data)

    @extend_schema(
        summary="Check the server's IP on the DNS blocklists now",
        request=None,
        responses={200: BlocklistCheckOut, 400: BAD_REQUEST, 404: NOT_FOUND, **COMMON},
        examples=[
            OpenApiExample(
                "Listed on one zone",
                value={"server": 3, "ipAddress": "203.0.113.13", "listed": True, "action": "paused", "state": "paused-blocklisted",
                       "results": [{"zone": "zen.spamhaus.org", "status": "listed", "codes": ["127.0.0.2"], "reason": "https://check.spamhaus.org/…", "error": ""},
                                   {"zone": "bl.spamcop.net", "status": "clear", "codes": [], "reason": "", "error": ""}]},
                response_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"], url_path="blocklist-check")
    def blocklist_check(self, request, pk=None):
        server = self.get_object()
        if not server.ip_address:
            raise DomainError(f"{server.name} has no IP address to look up; set ipAddress first", field="ipAddress")
        sweeps = blocklist.sweep(force=True, servers=[server])
        if not sweeps:
            raise DomainError("no DNS blocklist zones are configured (DNSBL_ZONES)")
        sweep = sweeps[0]
        server.refresh_from_db(fields=["state"])
        return Response(
            BlocklistCheckOut(
                {
                    "server": server.pk,
                    "ipAddress": sweep.ip,
                    "listed": bool(sweep.listed),
                    "action": sweep.action,
                    "state": server.state,
                    "results": [
                        {"zone": r.zone, "status": r.status, "codes": list(r.codes), "reason": r.reason, "error": r.error}
                        for r in sweep.results
                    ],
                }
            ).data
        )


# --- alerts ------------------------------------------------------------------------------------


class AlertOut(serializers.Serializer):
    id = serializers.IntegerField()
    createdAt = serializers.DateTimeField(source="created_at")
    level = serializers.ChoiceField(choices=Alert.Level.choices)
    kind = serializers.CharField()
    server = serializers.IntegerField(source="server_id", allow_null=True)
    serverName = serializers.CharField(source="server.name", allow_null=True, default=None)
    message = serializers.CharField()
    emailedAt = serializers.DateTimeField(source="emailed_at", allow_null=True)
    acknowledged = serializers.SerializerMethodField()
    acknowledgedAt = serializers.DateTimeField(source="acknowledged_at", allow_null=True)
    acknowledgedBy = serializers.CharField(source="acknowledged_by.username", allow_null=True, default=None)

    def get_acknowledged(self, alert: Alert) -> bool:
        return alert.acknowledged_at is not None


class AlertFilter(filters.FilterSet):
    level = filters.ChoiceFilter(choices=Alert.Level.choices)
    kind = filters.CharFilter()
    server = IdFilter(field_name="server_id")
    acknowledged = filters.BooleanFilter(field_name="acknowledged_at", lookup_expr="isnull", exclude=True)
    since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Alert
        fields = ["level", "kind", "server", "acknowledged", "since"]


@extend_schema_view(
    list=extend_schema(summary="The alert feed", responses={200: AlertOut(many=True), **COMMON}),
    retrieve=extend_schema(summary="One alert", responses={200: AlertOut, 404: NOT_FOUND, **COMMON}),
)
class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AlertOut
    filterset_class = AlertFilter
    search_fields = ["message", "kind"]
    ordering_aliases = {"createdAt": "created_at", "level": "level", "kind": "kind", "acknowledgedAt": "acknowledged_at"}
    ordering = ["-created_at"]
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return Alert.objects.select_related("server", "acknowledged_by")

    @extend_schema(
        summary="Acknowledge (records who and when; acknowledging again changes nothing)",
        request=None,
        responses={200: AlertOut, 404: NOT_FOUND, **COMMON},
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = self.get_object()
        alerts.acknowledge(alert, request.user)
        return Response(AlertOut(self.get_queryset().get(pk=alert.pk)).data)


# --- statistics and recommendations ------------------------------------------------------------


class GlobalStatsOut(serializers.Serializer):
    totalServers = serializers.IntegerField()
    activeServers = serializers.IntegerField()
    totalIPs = serializers.IntegerField()
    totalSent = serializers.IntegerField()
    totalDelivered = serializers.IntegerField()
    totalFailed = serializers.IntegerField()
    averageReputation = serializers.FloatField(allow_null=True)


class WarmupStatsOut(serializers.Serializer):
    day = serializers.IntegerField(allow_null=True)
    sentToday = serializers.IntegerField()
    dailyLimit = serializers.IntegerField()


class ServerStatsOut(serializers.Serializer):
    name = serializers.CharField()
    totalSent = serializers.IntegerField()
    totalDelivered = serializers.IntegerField()
    totalFailed = serializers.IntegerField()
    reputation = serializers.FloatField()
    health = serializers.CharField(help_text="up, down, blocklisted, paused or unconfigured")
    warmup = WarmupStatsOut()


class DailyStatsOut(serializers.Serializer):
    date = serializers.DateField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    confirmed = serializers.IntegerField()
    deferred = serializers.IntegerField()
    bounced = serializers.IntegerField()
    complained = serializers.IntegerField()
    failed = serializers.IntegerField()
    unknown = serializers.IntegerField()
    reputation = serializers.FloatField(allow_null=True)


class StatisticsOut(serializers.Serializer):
    global_ = GlobalStatsOut()
    servers = ServerStatsOut(many=True)
    daily = DailyStatsOut(many=True, help_text="The last 30 sending days, oldest first.")

    def get_fields(self):
        # "global" is a Python keyword, so the field is declared as global_ and renamed here.
        fields = super().get_fields()
        fields["global"] = fields.pop("global_")
        return fields


class StatisticsView(APIView):
    """The seed's getStatistics(): global totals, per-server totals with warm-up, and a daily series."""

    @extend_schema(
        responses={200: StatisticsOut, **COMMON},
        examples=[
            OpenApiExample(
                "Pool",
                value={
                    "global": {"totalServers": 10, "activeServers": 9, "totalIPs": 10, "totalSent": 1234, "totalDelivered": 1180, "totalFailed": 54, "averageReputation": 92.5},
                    "servers": [{"name": "SMTP Server 1", "totalSent": 120, "totalDelivered": 115, "totalFailed": 5, "reputation": 95.8, "health": "up", "warmup": {"day": 5, "sentToday": 85, "dailyLimit": 400}}],
                    "daily": [{"date": "2025-05-01", "sent": 120, "delivered": 115, "confirmed": 0, "deferred": 3, "bounced": 4, "complained": 0, "failed": 1, "unknown": 0, "reputation": 95.8}],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request):
        return Response(StatisticsOut(statistics.get_statistics()).data)


class RecommendationOut(serializers.Serializer):
    level = serializers.ChoiceField(choices=["critical", "warning", "info"])
    message = serializers.CharField()


class RecommendationsView(APIView):
    """The seed's getRecommendations(): `{level, message}` rules, most severe first."""

    @extend_schema(
        responses={200: RecommendationOut(many=True), **COMMON},
        examples=[
            OpenApiExample(
                "Two findings",
                value=[
                    {"level": "warning", "message": "Average reputation is below 80%. Slow down."},
                    {"level": "info", "message": "3 servers are warming up. Full capacity soon."},
                ],
                response_only=True,
            )
        ],
    )
    def get(self, request):
        return Response(RecommendationOut(recommendations.get_recommendations(), many=True).data)

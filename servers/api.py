"""REST views for the pool's configuration. Views are thin: validate, call one service, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from mailops.errors import DomainError

from . import configuration


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


class ErrorOut(serializers.Serializer):
    success = serializers.BooleanField()
    error = serializers.CharField()
    fields = serializers.DictField(required=False)


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


class PresetListView(APIView):
    @extend_schema(responses={200: PresetOut(many=True)})
    def get(self, request):
        return Response([configuration.preset_summary(p) for p in configuration.get_presets().values()])


class PresetRecommendationView(APIView):
    """The FAQ's answer to "how many servers do I need?"."""

    @extend_schema(
        parameters=[OpenApiParameter("emailsPerDay", int, required=True, description="Expected emails per day")],
        responses={200: inline_serializer("PresetRecommendation", {"emailsPerDay": serializers.IntegerField(), "preset": PresetOut()}), 400: ErrorOut},
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

"""Seed the 15 presets and the two warm-up schedules with the seed guide's exact numbers.

The data is written here, not imported, so that later edits to code cannot change history.
"""

from decimal import Decimal

from django.db import migrations

WARMUPS = [
    # (key, name, unit, steps): past the last step a server sends its full daily limit.
    ("default-6-day", "Default 6-day: 50/100/200/300/400/full", "emails", [50, 100, 200, 300, 400]),
    ("extended-10-day", "Extended 10-day, ending at the daily limit", "percent", [5, 10, 15, 25, 35, 45, 60, 75, 90]),
]

GEO_RULES = {".com": "US", ".eu": "EU", ".es": "EU", ".mx": "LATAM", ".br": "LATAM", ".ar": "LATAM"}

# key, name, tier, recommended, smtp servers, per-server limit, SendGrid/day, $/month, (smtp $, SendGrid $),
# setup $, regions, routing rules, warm-up, delay seconds, best for
PRESETS = [
    ("starter", "Starter - One Server", "starter", True, 1, 500, 0, "25", None, "0", [], {},
     "default-6-day", 0, "Getting started, testing the system, low volume"),
    ("basic-dual", "Basic Dual - Two Servers", "starter", False, 2, 500, 0, "50", None, "0", [], {},
     "default-6-day", 0, "Basic redundancy, double capacity"),
    ("starter-triple", "Starter Triple - Three Servers", "starter", False, 3, 500, 0, "75", None, "0", [], {},
     "default-6-day", 0, "Wider load distribution"),
    ("professional", "Professional - Five Servers", "professional", True, 5, 500, 0, "125", None, "50", [], {},
     "default-6-day", 0, "Mid-sized companies, regular campaigns"),
    ("professional-plus", "Professional Plus - Seven Servers", "professional", False, 7, 500, 0, "175", None, "70",
     [], {}, "default-6-day", 0, "More professional capacity"),
    ("business", "Business - Ten Servers", "business", True, 10, 500, 0, "250", None, "100", [], {},
     "default-6-day", 0, "Large companies, high volume"),
    ("business-advanced", "Business Advanced - Twelve Servers", "business", False, 12, 500, 0, "300", None, "120",
     [], {}, "default-6-day", 0, "Very high volume, several campaigns"),
    ("enterprise", "Enterprise - Fifteen Servers", "enterprise", True, 15, 500, 0, "375", None, "150", [], {},
     "default-6-day", 0, "Corporations, massive volume"),
    ("enterprise-plus", "Enterprise Plus - Twenty Servers", "enterprise", False, 20, 500, 0, "500", None, "200",
     [], {}, "default-6-day", 0, "Maximum capacity"),
    ("enterprise-ultimate", "Enterprise Ultimate - Twenty-five Servers", "enterprise", False, 25, 500, 0, "625",
     None, "250", [], {}, "default-6-day", 0, "Extreme volume, several brands"),
    ("hybrid-basic", "Hybrid Basic - Three Servers + SendGrid", "hybrid", True, 3, 500, 1500, "95", ("75", "20"),
     "0", [], {}, "default-6-day", 0, "Flexibility, demand peaks (SendGrid as overflow)"),
    ("hybrid-professional", "Hybrid Professional - Five Servers + SendGrid Pro", "hybrid", False, 5, 500, 3500,
     "215", ("125", "90"), "0", [], {}, "default-6-day", 0, "Maximum flexibility and scalability"),
    ("geographic-distributed", "Geographic Distributed - 4 US + 4 EU + 4 LATAM", "specialized", False, 12, 500, 0,
     "300", None, "150", ["US"] * 4 + ["EU"] * 4 + ["LATAM"] * 4, GEO_RULES, "default-6-day", 0,
     "International audience, better latency"),
    ("high-volume-burst", "High Volume Burst - Fifteen Servers + SendGrid Pro", "specialized", False, 15, 800, 8000,
     "450", None, "200", [], {}, "default-6-day", 0, "Massive campaigns in short periods"),
    ("ultra-secure", "Ultra Secure - Twenty Servers", "specialized", False, 20, 200, 0, "400", None, "150", [], {},
     "extended-10-day", 2, "Maximum deliverability, critical reputation"),
]


def seed(apps, schema_editor):
    WarmupSchedule = apps.get_model("servers", "WarmupSchedule")
    Preset = apps.get_model("servers", "Preset")
    schedules = {}
    for key, name, unit, steps in WARMUPS:
        schedules[key], _ = WarmupSchedule.objects.update_or_create(
            key=key, defaults={"name": name, "unit": unit, "steps": steps, "is_builtin": True}
        )
    for position, row in enumerate(PRESETS, start=1):
        (key, name, tier, recommended, servers, limit, sendgrid, monthly, split, setup, regions, rules, warmup,
         delay, best_for) = row
        Preset.objects.update_or_create(
            key=key,
            defaults={
                "name": name,
                "tier": tier,
                "recommended": recommended,
                "position": position,
                "smtp_servers": servers,
                "daily_limit_per_server": limit,
                "sendgrid_daily_limit": sendgrid,
                "monthly_cost": Decimal(monthly),
                "smtp_monthly_cost": Decimal(split[0]) if split else None,
                "sendgrid_monthly_cost": Decimal(split[1]) if split else None,
                "setup_cost": Decimal(setup),
                "regions": regions,
                "routing_rules": rules,
                "warmup_schedule": schedules[warmup],
                "min_delay_seconds": delay,
                "best_for": best_for,
                "is_builtin": True,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("servers", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]

"""mailops settings, read from the environment (django-environ).

Local defaults need no service at all: SQLite and kombu's filesystem broker.
Production mode (MAILOPS_PRODUCTION=true) has no default for any secret.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("MAILOPS_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

PRODUCTION = env.bool("MAILOPS_PRODUCTION", default=False)
DEBUG = env.bool("DEBUG", default=not PRODUCTION)


def _secret(name: str, dev_default: str | None = None) -> str:
    """A secret from NAME or from the file named by NAME_FILE; production has no default."""
    file_var = env.str(f"{name}_FILE", default="")
    if file_var:
        return Path(file_var).read_text().strip()
    value = env.str(name, default="")
    if value:
        return value
    if PRODUCTION or dev_default is None:
        raise ImproperlyConfigured(f"{name} must be set (or {name}_FILE) when MAILOPS_PRODUCTION is true")
    return dev_default


SECRET_KEY = _secret("SECRET_KEY", dev_default="dev-only-insecure-secret-key-change-me-0123456789abcdef")


def _dev_field_key() -> str:
    digest = hashlib.sha256(("mailops-field-key:" + SECRET_KEY).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


# Comma-separated Fernet keys. The first encrypts; every key decrypts, so a key can be
# rotated by putting the new one first and running `manage.py rotatekeys`.
FIELD_ENCRYPTION_KEYS = [
    k.strip() for k in _secret("FIELD_ENCRYPTION_KEY", dev_default=_dev_field_key()).split(",") if k.strip()
]

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "servers",
    "campaigns",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "mailops.middleware.LoginRequiredEverywhereMiddleware",
]

ROOT_URLCONF = "mailops.urls"
WSGI_APPLICATION = "mailops.wsgi.application"
ASGI_APPLICATION = "mailops.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mailops.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL plus a busy timeout lets the web server, workers and beat share one file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    # A file (not :memory:) so a real Celery worker can share the test database; one per test
    # process so parallel runs never collide.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(VAR_DIR / f"test-{os.getpid()}.sqlite3")
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "UTC"
# The zone in which a sending "day" (quota, warm-up day) starts and ends.
SENDING_DAY_TIME_ZONE = env.str("SENDING_DAY_TIME_ZONE", default="UTC")

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"

# Uploads: prospect CSVs stream to disk past this size, and are refused past the limit.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=200 * 1024 * 1024)

ADMINS = [tuple(a.split(":", 1)) if ":" in a else ("admin", a) for a in env.list("ADMINS", default=[])]
SERVER_EMAIL = env.str("SERVER_EMAIL", default="mailops@localhost")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="mailops@localhost")

# The alert transport: a relay of its own, never one of the sending pool.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("ALERT_SMTP_HOST", default="127.0.0.1")
EMAIL_PORT = env.int("ALERT_SMTP_PORT", default=2599)
EMAIL_HOST_USER = env.str("ALERT_SMTP_USER", default="")
EMAIL_HOST_PASSWORD = env.str("ALERT_SMTP_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("ALERT_SMTP_STARTTLS", default=False)
EMAIL_TIMEOUT = 10

# Celery: Redis when REDIS_URL is set, otherwise a filesystem broker needing no server.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
else:
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
# Batches each worker process holds ahead. With a broker that has no event loop (the
# filesystem transport) the consumer blocks in drain_events(timeout=2 s) while its window is
# full, so a window of one left workers idle half the time (docs/BENCHMARKS.md). A prefetched
# batch of a campaign paused meanwhile is handed back by take_batch, and its lease
# (MAILOPS_LEASE_SECONDS) outlives the wait.
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_PREFETCH_MULTIPLIER", default=4)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_ROUTES = {"servers.*": {"queue": "celery"}, "campaigns.*": {"queue": "celery"}}
# Sweeps run often and each decides from the active configuration whether it is due, so an
# operator's interval change takes effect without restarting beat.
CELERY_BEAT_SCHEDULE = {
    "dispatch": {"task": "campaigns.dispatch", "schedule": env.float("DISPATCH_INTERVAL_SECONDS", default=2.0)},
    "health-sweep": {"task": "servers.tasks.health_sweep", "schedule": 60.0},
    "blocklist-sweep": {"task": "servers.tasks.blocklist_sweep", "schedule": 300.0},
    "reputation": {"task": "servers.tasks.reputation_recompute", "schedule": 900.0},
    "alert-digest": {"task": "servers.tasks.alert_digest", "schedule": 3600.0},
}

# Sending
MAILOPS = {
    "POSTAL_ADDRESS": env.str("MAILOPS_POSTAL_ADDRESS", default="mailops demo, 1 Example Street, 00000 Example City"),
    "PUBLIC_BASE_URL": env.str("MAILOPS_PUBLIC_BASE_URL", default="http://127.0.0.1:8000"),
    "BOUNCE_DOMAIN": env.str("MAILOPS_BOUNCE_DOMAIN", default="bounces.mailops.localhost"),
    "UNSUBSCRIBE_MAILTO_DOMAIN": env.str("MAILOPS_UNSUBSCRIBE_MAILTO_DOMAIN", default="unsubscribe.mailops.localhost"),
    "SENDGRID_API_HOST": env.str("SENDGRID_API_HOST", default="https://api.sendgrid.com"),
    "SENDGRID_WEBHOOK_PUBLIC_KEY": env.str("SENDGRID_WEBHOOK_PUBLIC_KEY", default=""),
    "SENDGRID_WEBHOOK_MAX_AGE_SECONDS": env.int("SENDGRID_WEBHOOK_MAX_AGE_SECONDS", default=600),
    "DNSBL_ZONES": env.list("DNSBL_ZONES", default=["zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net"]),
    "DNS_RESOLVER": env.str("DNS_RESOLVER", default=""),
    "DNS_RESOLVER_PORT": env.int("DNS_RESOLVER_PORT", default=53),
    "DNS_TIMEOUT_SECONDS": env.float("DNS_TIMEOUT_SECONDS", default=3.0),
    "SENDER_DOMAIN": env.str("MAILOPS_SENDER_DOMAIN", default=""),
    "DKIM_SELECTOR": env.str("DKIM_SELECTOR", default=""),
    "DKIM_PRIVATE_KEY_FILE": env.str("DKIM_PRIVATE_KEY_FILE", default=""),
    "SMTP_CONNECT_TIMEOUT": env.float("SMTP_CONNECT_TIMEOUT", default=10.0),
    "SMTP_COMMAND_TIMEOUT": env.float("SMTP_COMMAND_TIMEOUT", default=30.0),
    "SMTP_DATA_TIMEOUT": env.float("SMTP_DATA_TIMEOUT", default=120.0),
    "BATCH_SIZE": env.int("MAILOPS_BATCH_SIZE", default=200),
    "LEASE_SECONDS": env.int("MAILOPS_LEASE_SECONDS", default=600),
    "ALERT_MAIL_MIN_INTERVAL_SECONDS": env.int("ALERT_MAIL_MIN_INTERVAL_SECONDS", default=900),
    "BOUNCE_LISTENER_HOST": env.str("BOUNCE_LISTENER_HOST", default="127.0.0.1"),
    "BOUNCE_LISTENER_PORT": env.int("BOUNCE_LISTENER_PORT", default=2525),
}

REST_FRAMEWORK = {
    # Token first: an anonymous caller then gets 401 with "WWW-Authenticate: Token", not a bare 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["mailops.permissions.IsOperatorOrReadOnly"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # The API speaks JSON; only the CSV upload actions take multipart (they say so themselves).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "mailops.api_lists.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "mailops.api_lists.AliasOrderingFilter",
        "mailops.api_lists.NulSafeSearchFilter",
    ],
    "EXCEPTION_HANDLER": "mailops.api_errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["mailops.throttling.ApiRateThrottle"],
    # Only the API's per-token rate: sign-ins are limited by failures instead (LOGIN_FAILURES_* below).
    "DEFAULT_THROTTLE_RATES": {"user": env.str("API_RATE_PER_TOKEN", default="6000/minute")},
}

# Sign-in failures allowed per username+address and per address within the window (mailops/throttling.py).
LOGIN_FAILURES_PER_ACCOUNT = env.int("LOGIN_FAILURES_PER_ACCOUNT", default=5)
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=50)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=15 * 60)
# Only behind a proxy that overwrites X-Forwarded-For; otherwise a client picks its own address.
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)

# /metrics answers a scraper presenting "Authorization: Bearer <METRICS_TOKEN>" (or a signed-in user).
METRICS_TOKEN = Path(env.str("METRICS_TOKEN_FILE")).read_text().strip() if env.str("METRICS_TOKEN_FILE", default="") else env.str("METRICS_TOKEN", default="")

SPECTACULAR_SETTINGS = {
    "TITLE": "mailops API",
    "DESCRIPTION": "Outbound email across a pool of SMTP relays and SendGrid: configuration, servers, "
    "sending, prospects, campaigns, suppression and monitoring.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from our own static files (no CDN; the CSP allows only 'self').
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "mailops_cache"}
}

from django.utils.csp import CSP  # noqa: E402

# Only our own static files run: no inline script, no third-party hosts.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads it to send X-CSRFToken
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Error pages and the mails to ADMINS hide every field or variable whose name looks secret.
DEFAULT_EXCEPTION_REPORTER_FILTER = "mailops.error_reports.SecretsExceptionReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "mailops.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"aiosmtpd": {"level": "WARNING"}, "mail.log": {"level": "WARNING"}},
}

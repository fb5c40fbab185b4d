"""The one settings module. Every value that differs between a laptop and
production comes from an environment variable read by a strict helper in
``config.env``; with none set, the system runs on its embedded default
(SQLite, local storage folders, Celery tasks in-process)."""

from __future__ import annotations

import os
import secrets
import zoneinfo
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_decimal, env_int, env_list, env_str
from config.storage_sites import backup_site_from_env, sites_from_env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ESCROW_VAR_DIR", str(BASE_DIR / "var")))


def _local_secret_key() -> str:
    """A per-checkout key kept under var/ (ignored by git), for local use only.

    Production sets DJANGO_SECRET_KEY or DJANGO_SECRET_KEY_FILE; the deploy
    check refuses this fallback there."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        # Several processes may start at once on a fresh checkout (the test suite's
        # parallel workers, gunicorn's): the key is written whole to a file of this
        # process's own and linked into place, so none reads a half-written key and
        # the first link wins for everyone.
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        draft.touch(mode=0o600)
        draft.write_text(secrets.token_urlsafe(64))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY") or _local_secret_key()
SECRET_KEY_FROM_ENVIRONMENT = bool(env_str("DJANGO_SECRET_KEY"))
DEBUG = env_bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "config.apps.StaffAdminConfig",  # django.contrib.admin with a second factor
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "notary_portal.apps.NotaryAuthenticatorsConfig",  # django_otp.plugins.otp_totp
    "csp",
    "rest_framework",
    "drf_spectacular",
    "axes",  # throttled sign-in on every door (AXES_* below)
    # Our apps, bottom layer first (see docs/architecture.md and the import-linter
    # contract in pyproject.toml): each may import only those listed above it.
    "accounts",
    "records",
    "billing",
    "transparency",
    "verification",
    "escrow",
    "portal",
    "notary_portal",
]

MIDDLEWARE = [
    # First: in-process tasks a request queues run after its answer is sent.
    "config.middleware.TasksAfterAnswerMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Near the top so it sees the final response of every page (config/middleware.py).
    "config.middleware.NoStoreMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # The request's own scheme and host, for e-mail links when ESCROW_PUBLIC_URL is empty.
    "config.middleware.RequestOriginMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as axes asks: turns a sign-in refused for a lock-out into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
        )
    }
else:
    # The embedded default keeps its database under var/, whatever else is set
    # (a DJANGO_SECRET_KEY from the environment means no key file creates it).
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "db.sqlite3"),
            # IMMEDIATE takes the write lock when a transaction starts, so two
            # writers never both read the audit-chain head before either writes.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
# Axes first: it refuses a locked-out username or address before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"
# A customer's password-reset link (portal/passwords.py) works once, for an hour.
PASSWORD_RESET_TIMEOUT = 60 * 60

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Django's default storage stores nothing here: every file lives in the vault's
# storage sites (records.services.files), so there is no MEDIA_ROOT.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security -------------------------------------------------------------
# DJANGO_SECURE=true is for deployments behind HTTPS: secure cookies, HSTS and
# redirects. It stays off by default so the local server works over plain HTTP.
SECURE = env_bool("DJANGO_SECURE", default=False)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
SECURE_HSTS_SECONDS = 31_536_000 if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
if env_bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 8 * 60 * 60
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Sign-in throttling on every door (/portal/, /notary/, /admin/), by django-axes: after
# ESCROW_LOGIN_FAILURE_LIMIT failures for one username, or from one address, within the
# cooling-off period, that username (from anywhere) and that address (for any username)
# are refused, right password or not, until ESCROW_LOGIN_COOLOFF_MINUTES pass without a
# further attempt. Existing and unknown usernames are counted and answered alike.
# docs/security.md says why; docs/operations.md how staff unlock someone.
AXES_FAILURE_LIMIT = env_int("ESCROW_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ESCROW_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_USERNAME_FORM_FIELD = "username"  # the login forms' field (it holds the e-mail address)
# The address the deposit API's allow-lists use: REMOTE_ADDR, or behind
# ESCROW_TRUSTED_PROXIES proxies the one the outermost trusted proxy saw.
AXES_CLIENT_IP_CALLABLE = "escrow.api.authentication.client_address"
AXES_LOCKOUT_CALLABLE = "config.lockout.locked_out_response"
# A success does not clear earlier failures: clearing them by address would let someone
# with an account of their own reset the count of their guesses at someone else's.
AXES_RESET_ON_SUCCESS = False
# Unlocking through axes' admin pages would be an admin change without an audit row;
# staff unlock with `manage.py axes_reset_username` / `axes_reset_ip` instead.
AXES_ENABLE_ADMIN = False
# Successful sign-ins are not kept a second time (the session and last_login say
# enough); only failures are kept, and each sign-in drops those past the cooling-off.
AXES_DISABLE_ACCESS_LOG = True
# No start-up banner: management commands (the vault CLI) keep stderr for their own words.
AXES_VERBOSE = False
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Celery ---------------------------------------------------------------
# With no broker configured, tasks run in-process (the embedded default).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60 * 55, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 60 * 60, minimum=1)
CELERY_TASK_ACKS_LATE = True
# A worker process killed mid-task (SIGKILL, out of memory) hands its message back at
# once instead of acknowledging it: the task runs again elsewhere (tasks are idempotent).
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers a message not acknowledged within this time, also one whose worker is
# still running it or holding it for a retry's countdown: so it must be longer than the
# longest task (the hard time limit) and the longest retry countdown (EscrowTask
# retry_backoff_max, up to an hour for backups). A whole worker lost is redelivered
# after it; a killed worker process at once (reject on worker lost, above).
CELERY_VISIBILITY_TIMEOUT = env_int(
    "CELERY_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 10 * 60, minimum=1
)
if CELERY_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT} s) must be longer than "
        f"CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT} s), or a running task is "
        "delivered a second time while it runs."
    )
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "audit-chain-verify-daily": {
        "task": "records.audit_chain_verify",
        "schedule": 24 * 60 * 60,
    },
    "vault-reconcile-hourly": {"task": "escrow.vault_reconcile", "schedule": 60 * 60},
    "vault-scrub-weekly": {"task": "escrow.vault_scrub", "schedule": 7 * 24 * 60 * 60},
    # Mails staff while any deposit lacks a verified copy somewhere (escrow.services.vault_health).
    "vault-health-hourly": {"task": "escrow.vault_health_check", "schedule": 60 * 60},
    "deposits-sweep": {"task": "escrow.deposits_sweep", "schedule": 60},
    "notifications-resend": {
        "task": "records.notifications_send_pending",
        "schedule": 10 * 60,
    },
    "billing-renewals-daily": {"task": "billing.subscriptions_renew_due", "schedule": 24 * 60 * 60},
    "billing-lapse-daily": {
        "task": "billing.subscriptions_lapse_overdue",
        "schedule": 24 * 60 * 60,
    },
    # Hourly, so a cancelled subscription ends within the hour its paid period does.
    "billing-end-cancelled-hourly": {
        "task": "billing.subscriptions_end_cancelled",
        "schedule": 60 * 60,
    },
    "backup-daily": {"task": "escrow.backup_run", "schedule": 24 * 60 * 60},
    "backup-drill-weekly": {"task": "escrow.backup_drill", "schedule": 7 * 24 * 60 * 60},
    "claims-contest-elapsed": {
        "task": "escrow.claims_contest_elapsed",
        "schedule": 15 * 60,
    },
    "exports-fail-stuck": {"task": "escrow.exports_fail_stuck", "schedule": 15 * 60},
}

# --- API ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["escrow.api.authentication.DepositTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Software escrow deposit API",
    "DESCRIPTION": "For release pipelines: deposit a build's source and follow its state.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Mail -----------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "escrow@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ADMINS = [("Escrow staff", address) for address in env_list("ESCROW_STAFF_EMAILS")]

# --- Escrow ---------------------------------------------------------------
ESCROW_FEE_RATE = env_decimal("ESCROW_FEE_RATE", "0.05")
# Where this service is reached, for links in e-mails (records.links.public_url).
# Empty: the links use the host of the request being served, or 127.0.0.1:8000
# in a worker; `check --deploy` refuses it empty in production.
ESCROW_PUBLIC_URL = env_str("ESCROW_PUBLIC_URL", "").rstrip("/")
ESCROW_SITES = sites_from_env(VAR_DIR / "vault")
# The system's Ed25519 key signs manifests and acknowledgement receipts: an
# unencrypted PKCS#8 PEM. Without one, a key is generated once under var/ (the
# deploy check refuses that in production).
ESCROW_SIGNING_KEY = env_str("ESCROW_SIGNING_KEY")
ESCROW_SIGNING_KEY_PATH = VAR_DIR / "signing_key.pem"
# The domain in the names of every signature the system makes: the SSHSIG namespaces
# (escrow-manifest@<domain>, ...) and the transparency log's origin (<domain>/deposits).
# Set it once, to a domain the operator holds, and never change it: old signatures and
# checkpoints name it, and people check them with it.
ESCROW_SIGNATURE_DOMAIN = env_str("ESCROW_SIGNATURE_DOMAIN", "escrow.localhost")
# Build verification (issue 16, docs/verification.md): after a deposit is stored, the
# receiving machine rebuilds it from a plaintext intake copy in a bubblewrap sandbox
# with no network. False turns it off entirely: no intake copy, no record, no task.
ESCROW_VERIFY_ENABLED = env_bool("ESCROW_VERIFY_ENABLED", True)
# At most this many builds run at once, and this many more wait; beyond that a deposit
# is recorded "not verified (busy)" and its intake copy is removed at once.
ESCROW_VERIFY_SLOTS = env_int("ESCROW_VERIFY_SLOTS", 2, minimum=1)
ESCROW_VERIFY_QUEUE = env_int("ESCROW_VERIFY_QUEUE", 10, minimum=0)
# Sandbox limits: a recipe's time_limit may not exceed MAX_SECONDS (wall clock and CPU);
# memory, process count and captured output are capped per build.
ESCROW_VERIFY_MAX_SECONDS = env_int("ESCROW_VERIFY_MAX_SECONDS", 1800, minimum=1)
ESCROW_VERIFY_MEMORY_MB = env_int("ESCROW_VERIFY_MEMORY_MB", 2048, minimum=16)
ESCROW_VERIFY_PROCESSES = env_int("ESCROW_VERIFY_PROCESSES", 256, minimum=4)
ESCROW_VERIFY_OUTPUT_MB = env_int("ESCROW_VERIFY_OUTPUT_MB", 16, minimum=1)
ESCROW_VERIFY_SCRATCH_MB = env_int("ESCROW_VERIFY_SCRATCH_MB", 4096, minimum=16)
# Each build runs as a uid of its own from this range (vault.build_sandbox): uids no
# account on the host uses, at least ESCROW_VERIFY_SLOTS of them.
ESCROW_VERIFY_UID_BASE = env_int("ESCROW_VERIFY_UID_BASE", 61000, minimum=1000)
ESCROW_VERIFY_UID_COUNT = env_int("ESCROW_VERIFY_UID_COUNT", 64, minimum=1)
# The intake copy's own lease: renewed while the build runs; once it expires the
# sweeper removes the copy and records "not verified (interrupted)". It must outlast
# the longest build.
ESCROW_VERIFY_LEASE_SECONDS = env_int("ESCROW_VERIFY_LEASE_SECONDS", 3600, minimum=60)
if ESCROW_VERIFY_LEASE_SECONDS <= ESCROW_VERIFY_MAX_SECONDS:
    raise ImproperlyConfigured(
        f"ESCROW_VERIFY_LEASE_SECONDS ({ESCROW_VERIFY_LEASE_SECONDS} s) must be longer than "
        f"ESCROW_VERIFY_MAX_SECONDS ({ESCROW_VERIFY_MAX_SECONDS} s), or the sweeper would "
        "interrupt a build that is still within its time limit."
    )
# Verification runs where the plaintext is: the task goes to the queue of the machine
# that received the deposit, "<prefix>@<hostname>"; each receiving machine runs a
# worker for its own queue (docs/operations.md).
ESCROW_VERIFY_QUEUE_PREFIX = env_str("ESCROW_VERIFY_QUEUE_PREFIX", "verify")
CELERY_TASK_ROUTES = ("verification.routing.route_task",)
# The stale-deposit warning also counts a product without a passing build for this long.
ESCROW_VERIFY_STALE_DAYS = env_int("ESCROW_VERIFY_STALE_DAYS", 90, minimum=1)
# Who deposits are sealed for is not a setting: whoever controls the environment
# could otherwise add a key of their own. A left-over variable stops start-up.
if env_str("ESCROW_BREAK_GLASS_RECIPIENT"):
    raise ImproperlyConfigured(
        "ESCROW_BREAK_GLASS_RECIPIENT is no longer read: propose the break-glass key in "
        "the admin (Seal recipient changes); a notary approves it in the notary portal."
    )
# Where an upload is held while it is checked and sealed: plaintext only ever
# rests here, in a temporary file removed when the step ends.
ESCROW_INTAKE_DIR = Path(env_str("ESCROW_INTAKE_DIR", str(VAR_DIR / "intake")))
# Every in-flight deposit is worked on under a lease (escrow.services.deposits): the
# receiving process renews it while it streams, checks and seals; one not renewed for
# this long is taken over by the scheduled sweeper (escrow.services.sweeper).
ESCROW_DEPOSIT_LEASE_SECONDS = env_int("ESCROW_DEPOSIT_LEASE_SECONDS", 300, minimum=1)
# How long a stored deposit's queued replication may take (every retry included: about
# 20 minutes) before the sweeper queues it again.
ESCROW_DEPOSIT_REPLICATION_LEASE_SECONDS = env_int(
    "ESCROW_DEPOSIT_REPLICATION_LEASE_SECONDS", 45 * 60, minimum=1
)
# How long a colleague's invitation link works (single use; only its hash is stored).
ESCROW_INVITATION_DAYS = env_int("ESCROW_INVITATION_DAYS", 7, minimum=1)
ESCROW_MAX_ARCHIVE_BYTES = env_int("ESCROW_MAX_ARCHIVE_BYTES", 8 * 1024**3, minimum=1)
ESCROW_MAX_MEMBERS = env_int("ESCROW_MAX_MEMBERS", 200_000, minimum=1)
ESCROW_MAX_EXPANDED_BYTES = env_int("ESCROW_MAX_EXPANDED_BYTES", 64 * 1024**3, minimum=1)
ESCROW_MAX_EXPANSION_RATIO = env_int("ESCROW_MAX_EXPANSION_RATIO", 200, minimum=1)
# Download links (certificates, released files) live at most this long: the
# published policy promises links that expire within an hour.
ESCROW_LINK_SECONDS = env_int("ESCROW_LINK_SECONDS", 3600, minimum=1, maximum=3600)
# S3 sites: may `vault prepare-sites` turn versioning on and set a default Object
# Lock retention (GOVERNANCE: a privileged account can lift it; COMPLIANCE: nobody)?
ESCROW_S3_MANAGE_BUCKETS = env_bool("ESCROW_S3_MANAGE_BUCKETS", default=True)
# How long one S3 request may wait to connect, and between two bytes of an answer,
# and how often it is tried: a hung site fails a request (retries included) within
# 30 s instead of holding a web worker (vault.s3_client.S3Options refuses more).
ESCROW_S3_CONNECT_TIMEOUT = env_int("ESCROW_S3_CONNECT_TIMEOUT", 5, minimum=1)
ESCROW_S3_READ_TIMEOUT = env_int("ESCROW_S3_READ_TIMEOUT", 12, minimum=1)
ESCROW_S3_MAX_ATTEMPTS = env_int("ESCROW_S3_MAX_ATTEMPTS", 2, minimum=1)
from vault.s3_client import S3Options  # noqa: E402  (the one check of these three)

try:  # refused at start-up, not at the first request
    S3Options(
        connect_timeout=ESCROW_S3_CONNECT_TIMEOUT,
        read_timeout=ESCROW_S3_READ_TIMEOUT,
        max_attempts=ESCROW_S3_MAX_ATTEMPTS,
    )
except ValueError as error:
    raise ImproperlyConfigured(f"ESCROW_S3_* timeouts: {error}") from None
ESCROW_OBJECT_LOCK_MODE = env_str("ESCROW_OBJECT_LOCK_MODE", "GOVERNANCE")
if ESCROW_OBJECT_LOCK_MODE not in ("GOVERNANCE", "COMPLIANCE"):
    raise ImproperlyConfigured("ESCROW_OBJECT_LOCK_MODE must be GOVERNANCE or COMPLIANCE.")
ESCROW_OBJECT_LOCK_DAYS = env_int("ESCROW_OBJECT_LOCK_DAYS", 365, minimum=1)
# Trust X-Forwarded-For from this many proxies in front of the app (for token allow-lists).
ESCROW_TRUSTED_PROXIES = env_int("ESCROW_TRUSTED_PROXIES", 0, minimum=0)
# Billing: the vendor's VAT rate at home, payment terms, grace before an unpaid
# subscription lapses, how early a renewal is invoiced, the fee for a second data
# export within 12 months, and how long a product may go without a deposit.
ESCROW_DOMESTIC_VAT_RATE = env_decimal("ESCROW_DOMESTIC_VAT_RATE", "0.21")
ESCROW_PAYMENT_TERMS_DAYS = env_int("ESCROW_PAYMENT_TERMS_DAYS", 30, minimum=0)
ESCROW_PAYMENT_GRACE_DAYS = env_int("ESCROW_PAYMENT_GRACE_DAYS", 30, minimum=0)
ESCROW_RENEWAL_NOTICE_DAYS = env_int("ESCROW_RENEWAL_NOTICE_DAYS", 30, minimum=1)
ESCROW_EXPORT_FEE = env_decimal("ESCROW_EXPORT_FEE", "250.00")
ESCROW_EXPORT_FEE_CURRENCY = env_str("ESCROW_EXPORT_FEE_CURRENCY", "EUR")
# An export still being built this long after it was requested was lost (a worker
# stopped): the scheduled `escrow.exports_fail_stuck` ends it as failed. Longer than
# a task may run, so a build in progress is never ended under it.
ESCROW_EXPORT_BUILD_TIMEOUT = env_int("ESCROW_EXPORT_BUILD_TIMEOUT", 2 * 60 * 60, minimum=60)
if ESCROW_EXPORT_BUILD_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"ESCROW_EXPORT_BUILD_TIMEOUT ({ESCROW_EXPORT_BUILD_TIMEOUT} s) must be longer than "
        f"CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT} s), or running builds are ended."
    )
ESCROW_INVOICE_PAYMENT_DETAILS = env_str(
    "ESCROW_INVOICE_PAYMENT_DETAILS",
    "Bank transfer to IBAN NL00 BANK 0123 4567 89, quoting the invoice number.",
)
ESCROW_STALE_DEPOSIT_DAYS = env_int("ESCROW_STALE_DEPOSIT_DAYS", 90, minimum=1)
# How long a stored deposit may have fewer verified copies than there are sites (counted
# from its first verified copy) before `vault health` fails and staff are mailed: the
# replication task's retries (about 20 minutes) and the next hourly reconcile fit in it.
ESCROW_COPY_GRACE_SECONDS = env_int("ESCROW_COPY_GRACE_SECONDS", 2 * 60 * 60, minimum=60)
# Release claims: the vendor's contest period, and the evidence documents
# accepted (PDF, PNG, JPEG; checked by content, not by name).
ESCROW_CONTEST_BUSINESS_DAYS = env_int("ESCROW_CONTEST_BUSINESS_DAYS", 10, minimum=0)
# The time zone a vendor's contest period is counted and shown in when the vendor's
# organisation names none (an IANA name; escrow/business_days.py).
ESCROW_DEFAULT_VENDOR_TIME_ZONE = env_str("ESCROW_DEFAULT_VENDOR_TIME_ZONE", "Europe/Amsterdam")
if ESCROW_DEFAULT_VENDOR_TIME_ZONE not in zoneinfo.available_timezones():
    raise ImproperlyConfigured(
        f"ESCROW_DEFAULT_VENDOR_TIME_ZONE={ESCROW_DEFAULT_VENDOR_TIME_ZONE!r} is not a known "
        "IANA time zone (e.g. Europe/Amsterdam)."
    )
ESCROW_EVIDENCE_MAX_BYTES = env_int("ESCROW_EVIDENCE_MAX_BYTES", 20 * 1024**2, minimum=1)
ESCROW_EVIDENCE_MAX_FILES = env_int("ESCROW_EVIDENCE_MAX_FILES", 10, minimum=1)
# Django refuses a request with more files than that while it parses it, as soon as
# the file past the limit starts (TooManyFilesSent; config/errors.py names the limit).
DATA_UPLOAD_MAX_NUMBER_FILES = ESCROW_EVIDENCE_MAX_FILES
# An uploaded file larger than this waits in a temporary file, never whole in memory,
# in a folder of the intake directory (where plaintext may rest, removed after the request).
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
FILE_UPLOAD_TEMP_DIR = str(ESCROW_INTAKE_DIR / "uploads")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
# How hard a stored notary identity is to guess at (age scrypt work factor, 2^N).
ESCROW_IDENTITY_SCRYPT_WORK_FACTOR = env_int("ESCROW_IDENTITY_SCRYPT_WORK_FACTOR", 18, minimum=10)
# The system's age identity for evidence, so the vendor and the claimant can read
# what was filed; deposits are never sealed to it. Without one, a key is
# generated once under var/ (the deploy check refuses that in production).
ESCROW_EVIDENCE_IDENTITY = env_str("ESCROW_EVIDENCE_IDENTITY")
ESCROW_EVIDENCE_IDENTITY_PATH = VAR_DIR / "evidence_identity.txt"
# Backups: where they go (a storage site that is not one of the vault's), who can
# open them, and the retention (restic's keep-daily/weekly/monthly/yearly).
ESCROW_BACKUP_SITE = backup_site_from_env(VAR_DIR / "backups")
ESCROW_BACKUP_RECIPIENTS = env_list("ESCROW_BACKUP_RECIPIENTS")
ESCROW_BACKUP_IDENTITY_PATH = VAR_DIR / "backup_identity.txt"
ESCROW_BACKUP_KEEP_DAILY = env_int("ESCROW_BACKUP_KEEP_DAILY", 14, minimum=0)
ESCROW_BACKUP_KEEP_WEEKLY = env_int("ESCROW_BACKUP_KEEP_WEEKLY", 8, minimum=0)
ESCROW_BACKUP_KEEP_MONTHLY = env_int("ESCROW_BACKUP_KEEP_MONTHLY", 6, minimum=0)
ESCROW_BACKUP_KEEP_YEARLY = env_int("ESCROW_BACKUP_KEEP_YEARLY", 1, minimum=0)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Software Escrow")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

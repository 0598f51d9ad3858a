"""Settings read from the environment (and an optional ``.env``), validated once.

Every problem is collected into one :class:`SettingsError` so an operator fixes them all
in one go instead of one traceback at a time.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from cep_automation import sentinel_url
from cep_automation.errors import SettingsError

# How to fix each setting, shown next to its error.
HINTS = {
    "REDIS_URL": "a Redis URL such as redis://127.0.0.1:6379/0 (or unix:///path/redis.sock, or "
                 "redis+sentinel://host:26379[,host:26379]/service_name[/db] for Redis Sentinel)",
    "DATABASE_URL": "a PostgreSQL URL such as postgresql://cep:secret@127.0.0.1:5432/cep",
    "BROKER_URL": "redis://…, amqp://guest:guest@127.0.0.1:5672/ or stub:// (empty = REDIS_URL)",
    "CRM_ENABLED": "true or false",
    "CEP_METRICS_PORT": "a TCP port number between 1 and 65535 (0 disables the endpoint)",
    "CEP_METRICS_HOST": "an IP address to listen on, e.g. 127.0.0.1 (this host only) or 0.0.0.0 (every interface)",
    "CEP_DB_POOL_MAX": "a whole number of connections, at least 1",
    "CEP_ALERT_THRESHOLDS": "ALERT[:QUEUE].FIELD=VALUE or ALERT[:QUEUE]=off, comma-separated, e.g. "
                            "QueueDepthHigh:leads.limit=500,PoolDown.for_s=300",
    "CEP_QUEUE_LIMITS": "QUEUE=SOFT/HARD pairs separated by commas, e.g. leads=5000/20000,llm=100/500",
    "CEP_MAX_PAYLOAD_BYTES": "a whole number of bytes, at least 1 (262144 = 256 KiB)",
    "CEP_MARKETING_HOURS": "opening and closing local times such as 09:00-21:00",
    "CEP_MARKETING_TIMEZONE": "a time zone name such as Europe/Madrid",
    "CEP_MARKETING_HOLIDAYS": "dates separated by commas, e.g. 2026-12-25,2027-01-01",
    "CEP_SEQUENCES_FILE": "the path of a sequences TOML file (docs/sequences.md); unset for the shipped one",
    "CEP_MARKETING_EMAIL": "one email address, e.g. marketing@cepformacion.es (empty: advisors only)",
    "CEP_SPEND_BUDGETS": "PROVIDER=EUROS or PROVIDER=Nunits pairs separated by commas, e.g. whatsapp=20,miami=500units",
}

EMAIL = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", sentinel_url.SCHEME)
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
BROKER_SCHEMES = REDIS_SCHEMES + ("amqp://", "amqps://", "stub://")


class Settings(BaseSettings):
    """Every setting of the system; environment names are the upper-cased field names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    redis_url: str
    database_url: str
    broker_url: str = ""
    cep_namespace: str = "cep"
    # A worker silent this long is presumed dead and its unacknowledged messages are requeued.
    cep_heartbeat_timeout_ms: int = Field(60_000, ge=1_000)
    cep_max_retry_after_s: int = Field(900, ge=1, le=7 * 24 * 3600)
    cep_retry_enqueue_patience_s: float = Field(60.0, ge=0)
    cep_db_pool_min: int = Field(1, ge=0)
    cep_db_pool_max: int = Field(10, ge=1)
    cep_metrics_port: int = Field(9191, ge=0, le=65535)
    # Where a pool's /metrics listens: loopback unless Prometheus scrapes from another host.
    cep_metrics_host: str = "127.0.0.1"
    cep_log_level: str = "INFO"
    cep_log_json: bool = False  # one JSON object per log line (log_output.py) instead of Dramatiq's text layout
    cep_data_dir: str = ".data"
    cep_disabled_plugins: str = ""
    cep_load_plugins: str | None = None
    cep_trace_plugins: bool = False
    cep_api_token: SecretStr | None = None
    cep_dashboard_read_only: bool = False
    # Flow control at enqueue (docs/architecture.md, "Flow control"): the largest payload accepted, per-queue
    # backpressure limits replacing queues.QUEUE_RULES ("leads=5000/20000,..."), how long a process trusts a
    # queue depth it read, and from how far ahead a job is held in PostgreSQL instead of Redis's delay queue.
    cep_max_payload_bytes: int = Field(256 * 1024, ge=1)
    cep_queue_limits: str = ""
    cep_queue_depth_cache_ms: int = Field(1000, ge=0)
    cep_schedule_hold_after_s: int = Field(300, ge=0)
    cep_dead_letter_auto_retry: bool = True
    # Sequences (docs/sequences.md): the school's sequences file (unset: the shipped one), and the marketing hours
    # messages keep to ("09:00-21:00" in the time zone, never on the holidays "2026-12-25,2027-01-01").
    cep_sequences_file: str | None = None
    cep_marketing_hours: str = "09:00-21:00"
    cep_marketing_timezone: str = "Europe/Madrid"
    cep_marketing_holidays: str = ""

    mailchimp_api_key: SecretStr | None = None
    mailchimp_server: str | None = None
    mailchimp_list_id: str | None = None
    mailchimp_transactional_key: SecretStr | None = None
    mailchimp_base_url: str | None = None
    mailchimp_max_connections: int = Field(10, ge=1)
    mailchimp_webhook_secret: SecretStr | None = None  # the ?key= of /webhooks/mailchimp (unset: webhook off)
    mandrill_base_url: str = "https://mandrillapp.com/api/1.0"
    mandrill_lead_template: str = "lead-confirmation"
    mandrill_from_email: str = "info@cepformacion.es"
    mandrill_digest_template: str = "daily-digest"
    # digest.daily: marketing's address (every campus's figures); unset, only the campus advisors get the digest.
    cep_marketing_email: str | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_access_token: SecretStr | None = None
    whatsapp_base_url: str = "https://graph.facebook.com/v23.0"
    whatsapp_rate_limit: int = Field(80, ge=1)
    whatsapp_confirm_grace_s: int = Field(120, ge=0)
    whatsapp_advisor_template: str = "lead_advisor_notice"
    meta_access_token: SecretStr | None = None
    meta_app_secret: SecretStr | None = None
    meta_verify_token: SecretStr | None = None
    meta_graph_base_url: str = "https://graph.facebook.com/v23.0"
    ga4_property_id: str | None = None
    ga4_credentials: SecretStr | None = None
    ga4_base_url: str = "https://analyticsdata.googleapis.com/v1beta"
    crm_enabled: bool = False
    meta_calls_per_minute: int = Field(1200, ge=1)
    llm_requests_per_minute: int = Field(500, ge=1)
    llm_tokens_per_minute: int = Field(200_000, ge=1)
    crm_webhook_url: str | None = None
    crm_webhook_secret: SecretStr | None = None
    s3_backup_bucket: str | None = None
    s3_endpoint_url: str | None = None
    backup_prefix: str = "backups/"
    backup_retention_days: int = Field(30, ge=1)
    cep_pg_bin_dir: str | None = None
    cep_media_dir: str | None = None
    llm_api_base: str | None = None
    llm_default_model: str = "gpt-4"
    # Spend caps (docs/architecture.md, "Spend caps"): LLM calls per day (Europe/Madrid) in euros and tokens (0: no
    # cap), the USD → EUR rate of providers that price in dollars, and daily budgets of other paid APIs
    # ("whatsapp=20,miami=500units": euros, or units the integration counts).
    llm_daily_cap_eur: float = Field(25.0, ge=0)
    llm_daily_cap_tokens: int = Field(2_000_000, ge=0)
    cep_usd_eur_rate: float = Field(0.86, gt=0)
    cep_spend_budgets: str = ""
    # Error reports (extra "sentry"): dead-lettered and crashed jobs, scrubbed of personal data (telemetry/sentry.py).
    sentry_dsn: SecretStr | None = None
    sentry_environment: str = "production"
    cep_alert_webhook_url: str | None = None
    cep_alert_email_to: str | None = None
    cep_alert_collapse_s: int = Field(600, ge=0)
    cep_alert_thresholds: str = ""  # alerts.check: overrides of ops/thresholds.py, "QueueDepthHigh:leads.limit=500,..."
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "alerts@cepformacion.es"
    smtp_starttls: bool = True
    # GDPR/RGPD (docs/gdpr.md): the key of the erasure records' identifier hashes, and how long each record kind
    # is kept before data.retention purges or anonymizes it.
    cep_gdpr_hash_key: SecretStr | None = None
    cep_retention_audit_days: int = Field(365, ge=1)
    cep_retention_dead_letters_days: int = Field(90, ge=1)
    cep_retention_effects_days: int = Field(365, ge=1)
    cep_retention_job_logs_days: int = Field(7, ge=1)
    cep_retention_leads_days: int = Field(730, ge=1)
    cep_retention_uploads_days: int = Field(365, ge=1)
    cep_retention_batch: int = Field(1000, ge=1)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        return _require_scheme(value, REDIS_SCHEMES)

    @field_validator("cep_queue_limits", "cep_alert_thresholds", "cep_spend_budgets")
    @classmethod
    def _parsed_lists(cls, value: str, info: ValidationInfo) -> str:
        """Lists of overrides are parsed once at start-up by the code that reads them; its ValueError names the
        malformed entry."""
        from cep_automation.ops.thresholds import overridden
        from cep_automation.queues import parse_limits
        from cep_automation.runtime.spend import parse_budgets

        parsers: dict[str, Callable[[str], object]] = {
            "cep_queue_limits": parse_limits, "cep_alert_thresholds": overridden, "cep_spend_budgets": parse_budgets}
        parse = parsers[str(info.field_name)]
        parse(value)
        return value

    @field_validator("cep_marketing_hours", "cep_marketing_timezone", "cep_marketing_holidays")
    @classmethod
    def _marketing_hours(cls, value: str, info: ValidationInfo) -> str:
        from cep_automation.sequences import calendar

        parsers: dict[str, Callable[[str], object]] = {
            "cep_marketing_hours": calendar.parse_hours, "cep_marketing_timezone": calendar.zone_named,
            "cep_marketing_holidays": calendar.parse_holidays}
        parsers[str(info.field_name)](value)  # its ValueError says what is expected
        return value

    @field_validator("cep_sequences_file")
    @classmethod
    def _sequences_file(cls, value: str | None) -> str | None:
        """The school's sequences are read at start-up, so a mistake stops the process with every problem listed."""
        from cep_automation.sequences.definition import SequenceFileError, load

        if value:
            try:
                load(value)
            except SequenceFileError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("cep_marketing_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if value and not EMAIL.fullmatch(value):
            raise ValueError("not an email address")
        return value or None

    @field_validator("cep_metrics_host")
    @classmethod
    def _metrics_host(cls, value: str) -> str:
        ipaddress.ip_address(value)  # its ValueError names the bad address
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: str) -> str:
        return _require_scheme(value, POSTGRES_SCHEMES)

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        return _require_scheme(value, BROKER_SCHEMES) if value else value

    @property
    def effective_broker_url(self) -> str:
        """The URL the broker connects to: ``BROKER_URL`` or else ``REDIS_URL``."""
        return self.broker_url or self.redis_url

    @property
    def disabled_plugins(self) -> set[str]:
        return {name.strip() for name in self.cep_disabled_plugins.split(",") if name.strip()}


def _require_scheme(value: str, schemes: tuple[str, ...]) -> str:
    if not value.startswith(schemes):
        raise ValueError(f"must start with one of {', '.join(schemes)}")
    if sentinel_url.is_sentinel(value):
        sentinel_url.parse(value)  # its ValueError says what is wrong with the Sentinel URL
    return value


# RabbitMQ carries only the queues: what our middleware and actors keep beside them lives in Redis.
REDIS_BESIDE_RABBITMQ = ("REDIS_URL is not set: with BROKER_URL=amqp://… RabbitMQ carries the queues, but idempotency "
                         "keys, flow-control limits, job state, the effects ledger's notes and the alert state still "
                         "live in Redis; set REDIS_URL too")


def _describe(error: ErrorDetails) -> str:
    name = str(error["loc"][0]).upper() if error["loc"] else "settings"
    hint = HINTS.get(name)
    msg = str(error["msg"]).removeprefix("Value error, ")
    what = "is not set" if error["type"] == "missing" else f"is invalid ({msg})"
    given = error.get("input")
    if name == "REDIS_URL" and error["type"] == "missing" and isinstance(given, dict) \
            and str(given.get("broker_url", "")).startswith(("amqp://", "amqps://")):
        return f"{REDIS_BESIDE_RABBITMQ}; expected {hint}"
    return f"{name} {what}" + (f"; expected {hint}" if hint else "")


# Read by third-party libraries (litellm, boto3) from the environment itself; a .env may supply them.
PASSTHROUGH = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION")


def export_passthrough(env_file: str | None = ".env") -> None:
    """Copy the libraries' own keys from ``.env`` into the environment (real environment variables win)."""
    if not env_file or not os.path.isfile(env_file):
        return
    from dotenv import dotenv_values

    for name, value in dotenv_values(env_file).items():
        if name in PASSTHROUGH and value and name not in os.environ:
            os.environ[name] = value


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise :class:`SettingsError` listing every problem."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError([_describe(e) for e in exc.errors()]) from None
    export_passthrough(overrides.get("_env_file", ".env"))
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()

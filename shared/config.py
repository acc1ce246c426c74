"""Settings read from the environment once per instance (pydantic-settings)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_ENVIRONMENTS = ("local", "test")  # the emulator suite; any other environment is deployed


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CMP_", extra="ignore")

    project_id: str = "demo-cmp"
    location: str = "europe-west1"
    # "local" and "test" run on the emulator suite; any other is a deployed environment.
    environment: Literal["local", "test", "dev", "staging", "prod"] = "local"

    # How Pub/Sub push and Cloud Tasks requests prove who sent them:
    # "oidc" verifies Google-signed OIDC tokens (production); "local" verifies HS256 tokens signed with
    # local_signing_key by the emulator suite (the Pub/Sub emulator cannot mint OIDC tokens).
    service_auth: Literal["oidc", "local"] = "oidc"
    local_signing_key: SecretStr | None = None
    # Service accounts allowed to call event and task endpoints (Pub/Sub's and Tasks' invoker accounts).
    service_invokers: tuple[str, ...] = ()
    # The audience OIDC tokens must carry: this function's URL (Terraform sets it).
    service_audience: str | None = None
    # Service accounts of other functions allowed to call this function's HTTP API (as "platform-service").
    service_callers: tuple[str, ...] = ()
    # This function's own service account: the identity it calls other functions with.
    service_account: str | None = None

    # Delivery attempts before an event is parked on the subscriber's dead-letter topic: a handler's bug
    # (permanent failure) gets max_delivery_attempts, an outage of a dependency (transient: 503, deadline,
    # connection) max_transient_attempts, kept under the subscriptions' Pub/Sub backstop (5 more).
    max_delivery_attempts: int = Field(default=5, ge=1, le=100)
    max_transient_attempts: int = Field(default=9, ge=1, le=100)
    # How long dedupe and idempotency records are kept (Pub/Sub retains messages at most 7 days).
    dedupe_retention_days: int = Field(default=8, ge=1)
    # An outbox entry older than this is republished by the relay (the request that wrote it died).
    outbox_relay_grace_seconds: float = Field(default=10.0, ge=0)

    # Soft-deleted tenants keep their data this long before offboarding erases it (a fraction of a day
    # is allowed: the local suite erases after seconds).
    tenant_retention_days: float = Field(default=30, gt=0)

    # Where functions are reached (Cloud Tasks targets): https://REGION-PROJECT.cloudfunctions.net by default.
    functions_base_url: str | None = None
    # The service account Cloud Tasks signs its OIDC tokens as, when calling our task functions.
    tasks_invoker_account: str | None = None

    # Outbound webhooks (Integration API): seconds to wait before each retry after the first attempt
    # (JSON list in CMP_WEBHOOK_RETRY_SCHEDULE; Svix's first seven delays, then daily: about 5 days in
    # all), and a local-development switch letting endpoints target http:// and loopback receivers
    # (never in prod).
    webhook_retry_schedule: tuple[float, ...] = (
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        36000,
        86400,
        86400,
        86400,
        86400,
    )
    webhooks_allow_loopback: bool = False

    # Notification email (Notification API): the SMTP relay and the sender. A login, when the relay
    # needs one, names the user; its password is the Secret Manager secret smtp_password_secret.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "Customer Management <notifications@cmp.example>"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password_secret: str = "notification-smtp-password"  # noqa: S105 (a secret's name, not a value)
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)

    # Deadlines of every call to Firestore, Pub/Sub, Cloud Tasks, Secret Manager and Identity Platform
    # (shared.clients): unary calls, and server streams (query results).
    call_deadline_seconds: float = Field(default=15.0, gt=0)
    stream_deadline_seconds: float = Field(default=60.0, gt=0)
    # How long a request waits for its tenant's access snapshot (loading it, or another request's load)
    # before it is answered 503 (or served the last good snapshot, if younger than access_stale_seconds).
    access_load_deadline_seconds: float = Field(default=5.0, gt=0)
    access_stale_seconds: float = Field(default=30.0, ge=0)
    # The Tenant Admin Portal: where it is served (invitation links point there; default: the portal
    # function's URL), the APIs' base URL it calls (empty: its own origin, where the functions are), and
    # Identity Platform's browser API key (a public identifier; the Auth emulator accepts any).
    portal_url: str | None = None
    portal_api_base: str = ""
    identity_api_key: str = "local-api-key"

    log_level: str = "INFO"

    @property
    def is_local(self) -> bool:
        return self.environment == "local"

    @property
    def is_deployed(self) -> bool:
        return self.environment not in LOCAL_ENVIRONMENTS

    def function_url(self, name: str) -> str:
        base = self.functions_base_url or f"https://{self.location}-{self.project_id}.cloudfunctions.net"
        return f"{base.rstrip('/')}/{name}"

    @property
    def portal_base_url(self) -> str:
        return (self.portal_url or self.function_url("portal")).rstrip("/") + "/"

    @property
    def tasks_account(self) -> str:
        return self.tasks_invoker_account or f"cloud-tasks@{self.project_id}.iam.gserviceaccount.com"


@cache
def get_settings() -> Settings:
    return Settings()


class EmulatorInDeployment(RuntimeError):
    pass


def refuse_emulators(environ: Mapping[str, str] = os.environ) -> None:
    """Fail closed at start-up: a deployed function (CMP_ENVIRONMENT other than local or test) never
    talks to an emulator (with FIREBASE_AUTH_EMULATOR_HOST set, ID tokens are not signature-checked).
    Reads the environment directly: it runs at import, before any setting is needed."""
    environment = environ.get("CMP_ENVIRONMENT", "local").lower()
    if environment in LOCAL_ENVIRONMENTS:
        return
    found = sorted(name for name, value in environ.items() if name.endswith("_EMULATOR_HOST") and value)
    if found:
        raise EmulatorInDeployment(
            f"CMP_ENVIRONMENT={environment} but {', '.join(found)} set: refusing to start"
        )

"""Who receives which alerts, over which channels: the ``alerts`` section of the settings.

A YAML file (``SAFETY_STREAM_ALERTS=alerts.yaml`` or ``serve --alerts FILE``) lists recipient
groups; each takes the severities (and optionally the kinds) it wants and names its channels.
Without a file every alert goes to a local NDJSON outbox file, so nothing is ever lost for
lack of configuration. Secrets (SMTP password, webhook secrets) may be given as
``${ENV_VAR}`` so the file itself can be committed.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from safety_stream.errors import UsageError, read_user_text
from safety_stream.events.derived import DerivedKind, Severity

ALERT_KINDS: tuple[DerivedKind, ...] = (
    "boundary.approached",
    "boundary.crossed",
    "boundary.cleared",
    "sentinel.raised",
    "report.due",
    "report.overdue",
    "event.quarantined",
)
"""Derived events that are alerts (a closed report clock and a site's late SAE are recorded
and listed, not announced)."""

NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailChannel(_Strict):
    type: Literal["email"]
    name: str = Field(default="email", pattern=NAME)
    to: list[str] = Field(min_length=1)


class WebhookChannel(_Strict):
    type: Literal["webhook"]
    name: str = Field(default="webhook", pattern=NAME)
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key; the signature goes in X-Safety-Stream-Signature"
    )


class AlertmanagerChannel(_Strict):
    type: Literal["alertmanager"]
    name: str = Field(default="alertmanager", pattern=NAME)
    url: str = Field(pattern=r"^https?://", description="base URL, e.g. http://127.0.0.1:9093")


class FileChannel(_Strict):
    type: Literal["file"]
    name: str = Field(default="file", pattern=NAME)
    path: Path


Channel = Annotated[
    EmailChannel | WebhookChannel | AlertmanagerChannel | FileChannel, Field(discriminator="type")
]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")


class RecipientGroup(_Strict):
    name: str = Field(pattern=NAME)
    severities: list[Severity] = Field(default=list(SEVERITIES), min_length=1)
    kinds: list[DerivedKind] | None = Field(default=None, description="default: every alert kind")
    channels: list[Channel] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_channel_names(self) -> RecipientGroup:
        names = [c.name for c in self.channels]
        if len(names) != len(set(names)):
            raise ValueError(f"group {self.name!r}: channel names must be unique, got {names}")
        return self

    def wants(self, kind: str, severity: str) -> bool:
        return severity in self.severities and (self.kinds is None or kind in self.kinds)


class SmtpSettings(_Strict):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = Field(default=False, description="implicit TLS (port 465) instead of STARTTLS")
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "safety-stream@localhost"
    timeout_seconds: float = Field(default=10, gt=0)
    ca_file: Path | None = Field(default=None, description="trust this CA (private relays)")


class RetryPolicy(_Strict):
    first_seconds: float = Field(default=1, gt=0)
    max_seconds: float = Field(default=300, gt=0)
    lease_seconds: float = Field(
        default=60, gt=0, description="a claimed delivery is retried after this if its sender died"
    )


class Escalation(_Strict):
    after_minutes: float = Field(default=240, gt=0)
    groups: list[str] = Field(min_length=1)

    @property
    def after(self) -> timedelta:
        return timedelta(minutes=self.after_minutes)


class AlertConfig(_Strict):
    board_url: str = "http://127.0.0.1:8080/board"
    groups: list[RecipientGroup] = Field(min_length=1)
    smtp: SmtpSettings | None = None
    retry: RetryPolicy = RetryPolicy()
    escalation: Escalation | None = None

    @field_validator("groups")
    @classmethod
    def _unique_groups(cls, groups: list[RecipientGroup]) -> list[RecipientGroup]:
        names = [g.name for g in groups]
        if len(names) != len(set(names)):
            raise ValueError(f"group names must be unique, got {names}")
        return groups

    @model_validator(mode="after")
    def _consistent(self) -> AlertConfig:
        emails = [c for g in self.groups for c in g.channels if isinstance(c, EmailChannel)]
        if emails and self.smtp is None:
            raise ValueError("an email channel needs the 'smtp' section")
        known = {g.name for g in self.groups}
        if self.escalation is not None and (unknown := set(self.escalation.groups) - known):
            raise ValueError(f"escalation names unknown groups {sorted(unknown)}; known {known}")
        return self

    def channels(self) -> dict[str, Channel]:
        """Every channel by its key ``<group>/<channel name>``."""
        return {f"{g.name}/{c.name}": c for g in self.groups for c in g.channels}


def default_config(directory: Path | None = None) -> AlertConfig:
    """Everything to ``safety-stream-alerts.ndjson`` in the working directory."""
    path = (directory or Path.cwd()) / "safety-stream-alerts.ndjson"
    return AlertConfig(
        groups=[RecipientGroup(name="local", channels=[FileChannel(type="file", path=path)])]
    )


_ENV = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def _expand(text: str, source: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise UsageError(f"{source}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV.sub(value, text)


def _expand_values(data: Any, source: str) -> Any:
    """``${VAR}`` in string values (not in comments or keys) from the environment."""
    if isinstance(data, str):
        return _expand(data, source)
    if isinstance(data, list):
        return [_expand_values(item, source) for item in data]
    if isinstance(data, dict):
        return {key: _expand_values(value, source) for key, value in data.items()}
    return data


def load_alert_config(path: Path) -> AlertConfig:
    """Read and validate an alert routing file; UsageError naming the file and every problem."""
    try:
        data = yaml.safe_load(read_user_text(path, "alert routing file"))
    except yaml.YAMLError as error:
        raise UsageError(f"alert routing file {path}: not valid YAML: {error}") from None
    try:
        return AlertConfig.model_validate(_expand_values(data, str(path)))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in d['loc']) or '(file)'}: {d['msg']}"
            for d in error.errors(include_url=False)
        )
        raise UsageError(f"alert routing file {path}: {problems}") from None

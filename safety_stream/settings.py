"""Runtime settings: environment variables ``SAFETY_STREAM_*`` (or flags) with safe defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from safety_stream.kafka.config import KafkaSettings

DEFAULT_DB = "sqlite:///safety-stream.db"


class Settings(BaseSettings):
    """Everything the embedded runtime needs; nothing is read at import time."""

    model_config = SettingsConfigDict(
        env_prefix="SAFETY_STREAM_", env_nested_delimiter="__", extra="forbid"
    )

    db: str = Field(default=DEFAULT_DB, description="SQLAlchemy URL of the event store")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    plan: Path | None = Field(default=None, description="Monitoring plan (default: SPARKLE-L)")
    alerts: Path | None = Field(
        default=None,
        description="Alert routing file (YAML); default: every alert to an NDJSON file here",
    )
    max_body_bytes: int = Field(default=16 << 20, gt=0, description="Largest accepted POST")
    max_records: int = Field(
        default=10_000,
        gt=0,
        description="Most records in one POST (413 beyond); each part of 1,000 commits on "
        "its own, so a long submission never holds the write lock for long",
    )
    tick_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="How often serve checks whether a window ended or a report fell due",
    )
    clock_skew_seconds: float = Field(
        default=300,
        ge=0,
        le=86_400,
        description="How far ahead of the server's clock an event's times may be (site clocks)",
    )
    checkpoint_key: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="HMAC-SHA256 key that signs checkpoints of the hash chain's head "
        "(written by report and serve, checked by verify --checkpoint); keep it out of the "
        "database's reach",
    )
    checkpoint_seconds: float = Field(
        default=600,
        gt=0,
        description="How often serve writes the signed checkpoint (with a checkpoint key)",
    )
    checkpoint_file: Path = Field(
        default=Path("safety-stream-checkpoint.json"),
        description="Where the latest signed checkpoint is written (with a checkpoint key)",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Bearer token that opens /metrics and nothing else (Prometheus's "
        "credentials_file); reader credentials (safety_officer, dsmb, admin) open it too",
    )
    kafka: KafkaSettings | None = Field(
        default=None,
        description="Distributed mode: the API produces to Kafka and workers process "
        "(SAFETY_STREAM_KAFKA__BOOTSTRAP=host:port, __SECURITY_PROTOCOL, __SASL_...)",
    )
    board_streams_per_credential: int = Field(
        default=4, ge=1, description="Most live board streams (/board/stream) per credential"
    )
    board_streams: int = Field(
        default=200, ge=1, description="Most live board streams on this server (429 beyond)"
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Most open HTTP connections; beyond, the oldest one that has not yet sent "
        "a whole request head is closed, else requests get a 503",
    )
    header_timeout_seconds: float = Field(
        default=10,
        gt=0,
        le=600,
        description="A connection that sends no complete request head in this time is closed",
    )
    body_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="A request whose body has not arrived this long after its first part is "
        "answered 408 and its connection closed",
    )
    keep_alive_seconds: int = Field(
        default=5, ge=1, le=600, description="An idle keep-alive connection is closed after this"
    )
    max_header_bytes: int = Field(
        default=16384, ge=1024, description="Largest request line plus headers (400 beyond)"
    )

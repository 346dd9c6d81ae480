"""How every Kafka connection is made: bootstrap servers, TLS and SASL.

One settings object feeds the three clients the system uses: kafka-python (API, site client,
topic administration), aiokafka through Faust (workers) and the benchmark's bare aiokafka
consumer. Tests use PLAINTEXT on loopback; production uses SASL_SSL (see deploy/kafka/).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseModel):
    """Connection settings; env vars SAFETY_STREAM_KAFKA__<FIELD> (e.g. __BOOTSTRAP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap: str = Field(description="host:port[,host:port...] of the brokers")
    security_protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = Field(default=None, description="CA bundle for the brokers")
    ssl_certfile: Path | None = Field(default=None, description="client certificate (mTLS)")
    ssl_keyfile: Path | None = None
    topic_prefix: str = Field(default="safety-stream", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    submission_partitions: int = Field(default=6, ge=1, le=1000)
    event_partitions: int = Field(default=6, ge=1, le=1000)
    replication: int = Field(default=1, ge=1, le=10, description="3 in production")

    @model_validator(mode="after")
    def _complete(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL")
        if sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password"
            )
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError("sasl_mechanism is set but security_protocol has no SASL")
        return self

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]

    def _tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self._tls():
            return None
        context = ssl.create_default_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None
        )
        if self.ssl_certfile is not None:
            context.load_cert_chain(
                str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
            )
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's and aiokafka's clients (they share them)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.security_protocol,
        }
        if self._tls():
            options["ssl_context"] = self.ssl_context()
        if self.sasl_mechanism is not None:
            assert self.sasl_password is not None
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.sasl_password.get_secret_value(),
            }
        return options

    def faust_broker(self) -> tuple[str, Any]:
        """Faust's ``broker`` URL and ``broker_credentials`` (None for PLAINTEXT)."""
        import faust

        url = ";".join(f"kafka://{server}" for server in self.servers)
        if self.sasl_mechanism is not None:
            assert self.sasl_password is not None and self.sasl_username is not None
            return url, faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password.get_secret_value(),
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context(),
            )
        if self._tls():
            return url, faust.SSLCredentials(self.ssl_context())
        return url, None

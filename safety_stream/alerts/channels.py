"""Delivery channels (adapters): SMTP email, signed JSON webhook, Alertmanager v2, NDJSON file.

Each ``send`` either returns (the receiver accepted the alert) or raises. Every message
carries a stable id (the delivery's ``<alert>/<channel>/<reason>``: e-mail Message-ID,
webhook ``X-Safety-Stream-Delivery``) so that a receiver can drop the rare duplicate of an
at-least-once retry (the sender died after the receiver accepted, before it was recorded).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

import httpx

from safety_stream.alerts.config import (
    AlertConfig,
    AlertmanagerChannel,
    Channel,
    EmailChannel,
    FileChannel,
    SmtpSettings,
    WebhookChannel,
)
from safety_stream.alerts.render import alertmanager_alerts, render, webhook_payload
from safety_stream.events.derived import DerivedEvent

SIGNATURE_HEADER = "X-Safety-Stream-Signature"
TIMEOUT_SECONDS = 10.0


class DeliveryError(Exception):
    """The receiver did not accept the alert; the outbox retries later."""


@dataclass(frozen=True)
class Delivery:
    delivery_id: str  # "<alert id>/<channel key>/<reason>"
    alert: DerivedEvent
    reason: str  # "alert" or "escalation"
    trial_id: str
    board_url: str

    @property
    def escalation(self) -> bool:
        return self.reason == "escalation"

    def json_body(self) -> bytes:
        """The JSON document of the webhook and the file channel."""
        return webhook_payload(
            self.alert, self.trial_id, self.board_url, self.reason, self.delivery_id
        )


class Sender(Protocol):
    def send(self, delivery: Delivery) -> None: ...


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``timestamp.body``, hex; the receiver recomputes and compares."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookSender:
    def __init__(self, channel: WebhookChannel) -> None:
        self.channel = channel

    def send(self, delivery: Delivery) -> None:
        body = delivery.json_body()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Safety-Stream-Delivery": delivery.delivery_id,
            "X-Safety-Stream-Timestamp": timestamp,
        }
        if self.channel.secret is not None:
            secret = self.channel.secret.get_secret_value().encode()
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        _post(self.channel.url, body, headers)


class AlertmanagerSender:
    def __init__(self, channel: AlertmanagerChannel) -> None:
        self.channel = channel

    def send(self, delivery: Delivery) -> None:
        alerts = alertmanager_alerts(
            delivery.alert, delivery.trial_id, delivery.board_url, delivery.escalation,
            datetime.now(UTC),
        )  # fmt: skip
        url = self.channel.url.rstrip("/") + "/api/v2/alerts"
        _post(url, json.dumps(alerts).encode(), {"Content-Type": "application/json"})


def _post(url: str, body: bytes, headers: dict[str, str]) -> None:
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        raise DeliveryError(f"POST {url}: {type(error).__name__}: {error}") from error
    if not response.is_success:
        raise DeliveryError(f"POST {url}: HTTP {response.status_code} {response.text[:200]}")


def email_message(delivery: Delivery, sender: str, to: list[str]) -> EmailMessage:
    rendered = render(delivery.alert, delivery.trial_id, delivery.board_url, delivery.escalation)
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(usegmt=True)
    # Stable per delivery, so a retried message is recognisably the same one.
    stable = uuid.uuid5(uuid.NAMESPACE_URL, delivery.delivery_id)
    message["Message-ID"] = f"<{stable}@safety-stream>"
    message["X-Safety-Stream-Alert"] = str(delivery.alert.derived_id)
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


class EmailSender:
    def __init__(self, channel: EmailChannel, smtp: SmtpSettings) -> None:
        self.channel = channel
        self.smtp = smtp

    def _context(self) -> ssl.SSLContext:
        cafile = str(self.smtp.ca_file) if self.smtp.ca_file else None
        return ssl.create_default_context(cafile=cafile)

    def send(self, delivery: Delivery) -> None:
        smtp = self.smtp
        message = email_message(delivery, smtp.sender, self.channel.to)
        try:
            client: smtplib.SMTP
            if smtp.ssl:
                client = smtplib.SMTP_SSL(
                    smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=self._context()
                )
            else:
                client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
            with client:
                if smtp.starttls and not smtp.ssl:
                    client.starttls(context=self._context())
                if smtp.username is not None:
                    password = smtp.password.get_secret_value() if smtp.password else ""
                    client.login(smtp.username, password)
                refused = client.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"SMTP {smtp.host}:{smtp.port}: {error}") from error
        if refused:
            raise DeliveryError(f"SMTP refused recipients {sorted(refused)}")


class FileSender:
    """Appends one JSON line per alert and fsyncs it: the local outbox of the demo."""

    def __init__(self, channel: FileChannel) -> None:
        self.channel = channel

    def send(self, delivery: Delivery) -> None:
        body = delivery.json_body()
        try:
            with open(self.channel.path, "ab") as handle:
                handle.write(body + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise DeliveryError(f"{self.channel.path}: {error}") from error


def sender_for(channel: Channel, config: AlertConfig) -> Sender:
    if isinstance(channel, EmailChannel):
        assert config.smtp is not None  # the config validator requires it
        return EmailSender(channel, config.smtp)
    if isinstance(channel, WebhookChannel):
        return WebhookSender(channel)
    if isinstance(channel, AlertmanagerChannel):
        return AlertmanagerSender(channel)
    return FileSender(channel)

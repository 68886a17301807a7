"""MQTT connection settings and a paho-mqtt client factory shared by edge and gateway.

paho runs its network loop in its own thread (``loop_start``); callers bridge to
their own threads or event loop deliberately (``call_soon``: a callback into an event loop).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import Field, SecretStr

from shopfloor.config import Strict, secret

log = logging.getLogger(__name__)


class TlsConfig(Strict):
    ca: Path | None = Field(None, description="CA bundle that signed the broker's certificate")
    cert: Path | None = Field(None, description="client certificate (PEM), for mutual TLS")
    key: Path | None = Field(None, description="client private key (PEM)")
    insecure: bool = Field(False, description="skip host name verification (testing only)")


class MqttConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)


def mqtt_client(cfg: MqttConfig, client_id: str, *, clean_session: bool = True,
                manual_ack: bool = False, max_inflight: int = 100,
                reconnect: bool = True) -> mqtt.Client:
    """A configured (not yet connected) MQTT 3.1.1 client. ``reconnect=False``: its network
    loop ends when the connection does (the caller opens a new client, e.g. a Sparkplug
    session with a new will)."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
        protocol=mqtt.MQTTv311, manual_ack=manual_ack, reconnect_on_failure=reconnect,
    )
    if cfg.username is not None:
        client.username_pw_set(cfg.username, secret(cfg.password))
    if cfg.tls is not None:
        client.tls_set(
            ca_certs=str(cfg.tls.ca) if cfg.tls.ca else None,
            certfile=str(cfg.tls.cert) if cfg.tls.cert else None,
            keyfile=str(cfg.tls.key) if cfg.tls.key else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(cfg.tls.insecure)
    client.reconnect_delay_set(min_delay=max(1, int(cfg.reconnect_min_s)),
                               max_delay=max(1, int(cfg.reconnect_max_s)))
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)  # callers bound their own queues
    return client


def describe(cfg: MqttConfig) -> str:
    """Where we connect, for logs: never includes the password."""
    scheme = "mqtts" if cfg.tls else "mqtt"
    user = f"{cfg.username}@" if cfg.username else ""
    return f"{scheme}://{user}{cfg.host}:{cfg.port}"


def call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
    """Hand a paho callback (its network thread) to ``loop``; a loop closed during shutdown
    takes nothing."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass

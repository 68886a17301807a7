"""Dead-lettering: a message that breaks the contract, or that a store refuses as bad data,
is published to ``{DEAD_LETTER_TOPIC}/{reason}`` (QoS 1) as
``{"reason", "detail", "topic", "payload"}`` (the payload's first KiB, base64), then
acknowledged like any other: ``publish_dead_letter``.
"""

from __future__ import annotations

import base64
import json
import logging

import paho.mqtt.client as mqtt

from shopfloor.contract import DEAD_LETTER_TOPIC

log = logging.getLogger(__name__)

DEAD_LETTER_PAYLOAD_BYTES = 1024  # of a rejected payload, kept for the dead-letter topic


def publish_dead_letter(client: mqtt.Client, reason: str, detail: str, topic: str,
                        head: bytes) -> bool:
    """Log the rejected message and publish it; False if the publish could not be queued."""
    log.warning("rejected message on %r: %s: %r", topic[:200], reason, detail[:200])
    doc = {"reason": reason, "detail": detail, "topic": topic,
           "payload": base64.b64encode(head[:DEAD_LETTER_PAYLOAD_BYTES]).decode()}
    info = client.publish(f"{DEAD_LETTER_TOPIC}/{reason}", json.dumps(doc), qos=1)
    if info.rc == mqtt.MQTT_ERR_SUCCESS:
        return True
    log.warning("could not publish to the dead-letter topic: %s", mqtt.error_string(info.rc))
    return False

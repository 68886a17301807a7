"""Data changes from a subscription straight to the driver: ``deliver_directly(client, sub,
on_values)``.

asyncua (2.x) turns every MonitoredItemNotification of a PublishResponse into two
objects and an asyncio task that calls the handler; at 15,000 changes per second the
tasks alone cost more than a core, and its generic decoding about as much again. Here
the session's PublishResponses are decoded by ``fastpublish`` and the subscription's
callback hands each DataChangeNotification's items, ``(client handle, value, status
code, timestamp ns | None)``, to ``on_values`` in the order the server sent them;
anything else in the response (status changes, events) still goes to asyncua's own
callback. A response ``fastpublish`` cannot decode is decoded by asyncua (logged once).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import Subscription
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary
from asyncua.ua.uaerrors import UaStructParsingError

from .codec import source_ts_ns
from .fastpublish import DataChanges, decode_publish

log = logging.getLogger(__name__)

Item = tuple[int, Any, int, int | None]
OnValues = Callable[[Sequence[Item]], None]


def _items(notification: ua.DataChangeNotification) -> list[Item]:
    """asyncua's decoding as ``DataChanges`` items (a response decoded by asyncua)."""
    out = []
    for item in notification.MonitoredItems:
        dv = item.Value
        status = dv.StatusCode
        out.append((item.ClientHandle, dv.Value.Value if dv.Value is not None else None,
                    status.value if status is not None else 0, source_ts_ns(dv)))
    return out


def _fast_publish(session: Any, direct: set[int]) -> Callable[..., Any]:
    """``session.publish`` decoding with ``decode_publish`` the responses of ``direct``
    subscriptions."""
    warned = False

    async def publish(acks: list[ua.SubscriptionAcknowledgement]) -> ua.PublishResponse:
        nonlocal warned
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        data = bytes(await session._send_request(request, timeout=0))
        try:
            response = decode_publish(data, direct)
            if response is not None:
                return response
        except Exception as exc:
            if not warned:
                warned = True
                log.warning("a PublishResponse not decoded directly (%r): asyncua decodes "
                            "it", exc)
        try:
            return struct_from_binary(ua.PublishResponse, Buffer(data))
        except Exception as ex:
            raise UaStructParsingError from ex

    return publish


def deliver_directly(client: Client, sub: Subscription, on_values: OnValues) -> None:
    """From now on the data changes of ``sub`` go to ``on_values(items)``."""
    session = client.uaclient.session
    direct: set[int] | None = getattr(session, "shopfloor_direct", None)
    if direct is None:
        direct = session.shopfloor_direct = set()
        session.publish = _fast_publish(session, direct)
    callbacks = client.uaclient._subscription_callbacks
    sid = sub.subscription_id
    original = callbacks[sid]
    direct.add(sid)

    def callback(result: ua.PublishResult) -> Any:
        msg = result.NotificationMessage
        sub.last_publish_at = time.monotonic()  # asyncua's keep-alive watch
        data = msg.NotificationData
        if not data:
            return None
        sub.last_sequence_number = int(msg.SequenceNumber)
        rest = []
        for notification in data:
            kind = type(notification)
            if kind is DataChanges:
                on_values(notification)
            elif kind is ua.DataChangeNotification:
                on_values(_items(notification))
            else:
                rest.append(notification)
        if not rest:
            return None
        msg.NotificationData = rest
        return original(result)

    callbacks[sid] = callback

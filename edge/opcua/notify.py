"""Data changes from a subscription straight to the driver: ``deliver_directly(client, sub,
on_change)``.

asyncua (2.x) turns every MonitoredItemNotification of a PublishResponse into two
objects and an asyncio task that calls the handler; at 15,000 changes per second the
tasks alone cost more than a core. Here the session's callback for the subscription
hands each notification's client handle and DataValue to ``on_change`` in the order the
server sent them, in one pass; anything else in the response (status changes, events)
still goes to asyncua's own callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import Subscription

OnChange = Callable[[int, ua.DataValue], None]


def deliver_directly(client: Client, sub: Subscription, on_change: OnChange) -> None:
    """From now on the data changes of ``sub`` go to ``on_change(client_handle, value)``."""
    callbacks = client.uaclient._subscription_callbacks
    sid = sub.subscription_id
    original = callbacks[sid]

    def callback(result: ua.PublishResult) -> Any:
        msg = result.NotificationMessage
        sub.last_publish_at = time.monotonic()  # asyncua's keep-alive watch
        data = msg.NotificationData
        if not data:
            return None
        sub.last_sequence_number = int(msg.SequenceNumber)
        rest = []
        for notification in data:
            if type(notification) is ua.DataChangeNotification:
                for item in notification.MonitoredItems:
                    on_change(item.ClientHandle, item.Value)
            else:
                rest.append(notification)
        if not rest:
            return None
        msg.NotificationData = rest
        return original(result)

    callbacks[sid] = callback

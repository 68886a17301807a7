"""``fastpublish.decode_publish`` against asyncua's own decoder: the same PublishResponses
(built and encoded by asyncua) give the same items, for every kind of Variant, status and
timestamp, with the other notifications and results left as asyncua decodes them; and
the DataValue field order of the spec (SourcePicoseconds before ServerTimestamp), which
asyncua's generic decoder does not follow."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary
from asyncua.ua.uatypes import MAX_OPC_FILETIME, win_epoch_to_datetime

from shopfloor.edge.opcua.fastpublish import DataChanges, decode_publish, ticks_ns
from shopfloor.times import datetime_ns

T = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
VT = ua.VariantType
VARIANTS = [
    ua.Variant(True, VT.Boolean), ua.Variant(False, VT.Boolean), ua.Variant(-5, VT.SByte),
    ua.Variant(200, VT.Byte), ua.Variant(-32768, VT.Int16), ua.Variant(65535, VT.UInt16),
    ua.Variant(-2**31, VT.Int32), ua.Variant(2**32 - 1, VT.UInt32),
    ua.Variant(-2**63, VT.Int64), ua.Variant(2**64 - 1, VT.UInt64),
    ua.Variant(1.1, VT.Float), ua.Variant(-2.5e300, VT.Double),
    ua.Variant(float("nan"), VT.Double), ua.Variant("h\u00e4ll\u00f6 \u4e2d", VT.String),
    ua.Variant("", VT.String), ua.Variant(None, VT.String), ua.Variant(None, VT.Null),
    ua.Variant(T, VT.DateTime), ua.Variant(b"\x00\xff", VT.ByteString),
    ua.Variant(ua.LocalizedText("Auto", "en"), VT.LocalizedText),
    ua.Variant(ua.NodeId("x", 3), VT.NodeId), ua.Variant([1.0, 2.0], VT.Double),
    ua.Variant([[1, 2], [3, 4]], VT.Int32, Dimensions=[2, 2]),
    ua.Variant(ua.Range(0.0, 100.0), VT.ExtensionObject),
    ua.Variant(ua.StatusCode(ua.StatusCodes.BadTimeout), VT.StatusCode),
]


def value(variant: ua.Variant, **fields: object) -> ua.DataValue:
    return ua.DataValue(variant, **fields)


DATA_VALUES = [value(v, SourceTimestamp=T, ServerTimestamp=T + timedelta(seconds=1))
               for v in VARIANTS] + [
    value(ua.Variant(3.0, VT.Double)),  # no timestamps: the agent's clock
    value(ua.Variant(4.0, VT.Double), ServerTimestamp=T),  # the server's only
    value(ua.Variant(5.0, VT.Double), SourceTimestamp=datetime(1601, 1, 1, tzinfo=UTC),
          ServerTimestamp=T),  # 1601 = none
    value(ua.Variant(6, VT.Int32), StatusCode=ua.StatusCode(0x40940000), SourceTimestamp=T),
    ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown),
                 ServerTimestamp=T),
    value(ua.Variant(7.0, VT.Double), SourceTimestamp=T, SourcePicoseconds=500),
    value(ua.Variant(8.0, VT.Double), ServerTimestamp=T, ServerPicoseconds=900),
]


def response(*notifications: object, sid: int = 7) -> bytes:
    r = ua.PublishResponse()
    r.ResponseHeader.Timestamp = T
    r.ResponseHeader.RequestHandle = 42
    p = r.Parameters
    p.SubscriptionId, p.AvailableSequenceNumbers, p.MoreNotifications = sid, [3, 4], True
    p.NotificationMessage.SequenceNumber = 4
    p.NotificationMessage.PublishTime = T
    p.NotificationMessage.NotificationData = list(notifications)
    p.Results = [ua.StatusCode(ua.StatusCodes.BadSequenceNumberUnknown)]
    return struct_to_binary(r)


def expected(dv: ua.DataValue) -> tuple[object, int, int | None]:
    """What the driver took from asyncua's DataValue (codec.source_ts_ns, without the
    agent's clock)."""
    ts = None
    for t in (dv.SourceTimestamp, dv.ServerTimestamp):
        if t is not None and t.year > 1601:
            ts = datetime_ns(t)
            break
    status = dv.StatusCode.value if dv.StatusCode is not None else 0
    return (dv.Value.Value if dv.Value is not None else None), status, ts


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def test_every_item_is_what_asyncua_decodes():
    items = [ua.MonitoredItemNotification(ClientHandle=1000 + i, Value=dv)
             for i, dv in enumerate(DATA_VALUES)]
    diag = ua.DiagnosticInfo(SymbolicId=3, AdditionalInfo="x")
    events = ua.EventNotificationList(Events=[ua.EventFieldList(
        ClientHandle=9, EventFields=[ua.Variant("alarm", VT.String)])])
    status = ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout))
    data = response(ua.DataChangeNotification(MonitoredItems=items[:10]), events,
                    ua.DataChangeNotification(MonitoredItems=items[10:],
                                              DiagnosticInfos=[diag]), status)
    ref = struct_from_binary(ua.PublishResponse, Buffer(data))
    got = decode_publish(data)
    assert got is not None
    assert got.ResponseHeader == ref.ResponseHeader
    p, q = got.Parameters, ref.Parameters
    assert (p.SubscriptionId, p.AvailableSequenceNumbers, p.MoreNotifications, p.Results,
            p.DiagnosticInfos) == (7, [3, 4], True, q.Results, q.DiagnosticInfos)
    assert p.NotificationMessage.SequenceNumber == 4
    assert p.NotificationMessage.PublishTime == q.NotificationMessage.PublishTime
    first, ev, second, st = p.NotificationMessage.NotificationData
    assert type(first) is DataChanges and type(second) is DataChanges
    assert ev == q.NotificationMessage.NotificationData[1]
    assert st == q.NotificationMessage.NotificationData[3]
    decoded = list(first) + list(second)
    assert [i[0] for i in decoded] == [1000 + i for i in range(len(DATA_VALUES))]
    ref_values = [i.Value for n in q.NotificationMessage.NotificationData[::2]
                  for i in n.MonitoredItems]
    for (_, v, status, ts), dv in zip(decoded, ref_values, strict=True):
        want = expected(dv)
        assert same(v, want[0]) and (status, ts) == want[1:], (dv, v, status, ts)


def test_a_response_for_another_subscription_is_left_to_asyncua():
    data = response(ua.DataChangeNotification(MonitoredItems=[
        ua.MonitoredItemNotification(ClientHandle=1, Value=DATA_VALUES[0])]), sid=8)
    assert decode_publish(data, {7}) is None
    assert decode_publish(data, {8}) is not None


def test_source_picoseconds_come_before_the_server_timestamp():
    # mask: value, status, source ts, server ts, source ps, server ps (OPC UA Part 6)
    ticks = 133_000_000_000_000_000
    body = (struct.pack("<iIB", 1, 5, 0x3F) + struct.pack("<Bd", 11, 2.5)
            + struct.pack("<IqHqH", 0, 0, 12, ticks, 34) + struct.pack("<i", 0))
    eo = struct.pack("<BBHBi", 1, 0, ua.ObjectIds.DataChangeNotification_Encoding_DefaultBinary,
                     1, len(body)) + body
    empty = response()
    head, tail = empty[:-16], empty[-16:]  # NotificationData count, Results, Diagnostics
    assert struct.unpack("<i", tail[:4]) == (0,)
    got = decode_publish(head + struct.pack("<i", 1) + eo + tail[4:])
    assert got is not None
    [changes] = got.Parameters.NotificationMessage.NotificationData
    assert list(changes) == [(5, 2.5, 0, ticks_ns(ticks))]  # source ts 0 = none: server's


@pytest.mark.parametrize("ticks", [-1, 0, 365 * 864 * 10**9 - 1, 365 * 864 * 10**9,
                                   116444736000000000, 116444736000000009,
                                   133_000_000_123_456_789, MAX_OPC_FILETIME - 1,
                                   MAX_OPC_FILETIME, 2**63 - 1])
def test_ticks_are_what_asyncuas_datetime_gives(ticks):
    dt = win_epoch_to_datetime(ticks)
    assert ticks_ns(ticks) == (datetime_ns(dt) if dt.year > 1601 else None)

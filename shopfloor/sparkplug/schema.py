"""The Sparkplug B protobuf messages, built by the ``protobuf`` package from the compiled
schema ``sparkplug_b.desc`` (``protoc --descriptor_set_out`` of ``sparkplug_b.proto``).

A descriptor set rather than generated ``_pb2`` code: its wire format is stable across
protobuf releases, so any ``protobuf`` from 4.25 on loads it (generated code is tied to
the protoc release that made it). ``tests/test_sparkplug_payload.py`` recompiles the
.proto and fails if the committed descriptor differs.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "org.eclipse.tahu.protobuf"
DESCRIPTOR_FILE = "sparkplug_b.desc"


def _load() -> descriptor_pool.DescriptorPool:
    data = files(__package__).joinpath(DESCRIPTOR_FILE).read_bytes()
    pool = descriptor_pool.DescriptorPool()  # our own pool: no clash with other copies
    for proto in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(proto)
    return pool


POOL = _load()
Payload: Any = message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{PACKAGE}.Payload"))
Metric: Any = Payload.Metric
PropertySet: Any = Payload.PropertySet
DATATYPES: dict[str, int] = {v.name: v.number
                             for v in POOL.FindEnumTypeByName(f"{PACKAGE}.DataType").values}

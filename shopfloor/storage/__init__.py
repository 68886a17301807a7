"""Sample storage shared by the gateway (writes) and the server (reads).

``base``: the interface (``Series``, ``SampleReader``, ``SampleWriter``); ``config``: the
``store:`` config and ``open_reader`` / ``open_writers``; backends ``sqlite`` (embedded)
and ``influx`` (InfluxDB 1.x/2.x); ``ledger``: stored batch seqs per edge agent.
"""

from .base import (
    PermanentWriteError,
    Row,
    SampleReader,
    SampleWriter,
    Series,
    good_quality,
    sample_value,
)
from .config import EmbeddedStoreConfig, InfluxConfig, StoreConfig, open_reader, open_writers

__all__ = ["EmbeddedStoreConfig", "InfluxConfig", "PermanentWriteError", "Row",
           "SampleReader", "SampleWriter", "Series", "StoreConfig", "good_quality",
           "open_reader", "open_writers", "sample_value"]

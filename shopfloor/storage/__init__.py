"""Sample storage shared by the gateway (writes) and the server (reads).

``base``: the interface (``Series``, ``SampleReader``, ``SampleWriter``, ``ExpiringStore``);
``ledger``: the seq ledger (``SeqLedger``, ``MemoryLedger``: stored batch seqs per edge
agent); ``config``: the ``store:`` config, ``open_reader`` and ``open_stores``; backends
``sqlite`` (embedded, also the ledger) and ``influx`` (InfluxDB 1.x/2.x).
"""

from .base import (
    ExpiringStore,
    PermanentWriteError,
    SampleReader,
    SampleWriter,
    Series,
    good_quality,
    sample_value,
)
from .config import (
    EmbeddedStoreConfig,
    InfluxConfig,
    StoreConfig,
    Stores,
    open_reader,
    open_stores,
    open_writers,
)
from .ledger import MemoryLedger, SeqLedger

__all__ = ["EmbeddedStoreConfig", "ExpiringStore", "InfluxConfig", "MemoryLedger",
           "PermanentWriteError", "SampleReader", "SampleWriter", "SeqLedger", "Series",
           "StoreConfig", "Stores", "good_quality", "open_reader", "open_stores",
           "open_writers", "sample_value"]

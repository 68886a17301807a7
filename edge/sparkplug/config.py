"""The edge config's ``sparkplug:`` section: publish as a Sparkplug B edge node instead of
shopfloor's own JSON contract (see ``edge.sample.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from shopfloor.config import Strict

_ID = r"^[^/+#]{1,128}$"  # a Sparkplug id: no '/', '+' or '#'


class SparkplugEdgeConfig(Strict):
    group_id: str = Field(pattern=_ID, description="Sparkplug group id of this edge node")
    node_id: str | None = Field(None, pattern=_ID,
                                description="edge node id; default: the agent_id")
    primary_host_id: str | None = Field(
        None, pattern=_ID, description="wait for this host's STATE online before the births; "
                                       "while it is offline data waits in the outbox and is "
                                       "published later flagged historical")
    qos: Literal[0, 1] = Field(
        1, description="QoS of births and data. Sparkplug 3.0 says 0; 1 (default) acknowledges "
                       "each batch in the outbox on the broker's PUBACK, so none is lost on a "
                       "dropped connection; with 0 a batch counts as sent once written")
    state_path: Path | None = Field(
        None, description="file keeping bdSeq across restarts (and SIGKILL); default: the "
                          "outbox path + '.sparkplug.json'")

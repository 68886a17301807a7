"""Commands from the gateway to an edge agent on
``shopfloor/v1/_agent/{agent}/cmd`` (QoS 1, not retained). seq is per agent across its
devices, so a missing seq names no device: commands address the agent. Today one
command: ``{"v":1,"cmd":"replay","ranges":[[first,last],...]}`` asks the agent to
publish again the acknowledged batches with those seqs still in its replay window."""

from __future__ import annotations

import json

from shopfloor.contract import SEGMENT_RE, TOPIC_ROOT, VERSION, ContractError

AGENT_TOPIC_ROOT = f"{TOPIC_ROOT}/{VERSION}/_agent"
MAX_REPLAY_RANGES = 100


def agent_cmd_topic(agent: str) -> str:
    if not SEGMENT_RE.fullmatch(agent):
        raise ContractError("bad_agent", f"agent {agent[:80]!r} is not an identifier")
    return f"{AGENT_TOPIC_ROOT}/{agent}/cmd"


def replay_request(ranges: list[tuple[int, int]]) -> bytes:
    return json.dumps({"v": 1, "cmd": "replay", "ranges": [list(r) for r in ranges]},
                      separators=(",", ":")).encode()


def decode_replay_request(payload: bytes) -> list[tuple[int, int]]:
    """The seq ranges of a replay command; raises ContractError."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError("bad_json", str(exc)[:200]) from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or doc.get("cmd") != "replay":
        raise ContractError("bad_schema", "not a v1 replay command")
    ranges = doc.get("ranges")
    if not isinstance(ranges, list) or len(ranges) > MAX_REPLAY_RANGES:
        raise ContractError("bad_schema", "ranges must be a short list")
    out = []
    for r in ranges:
        if not (isinstance(r, list) and len(r) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in r)
                and r[0] <= r[1]):
            raise ContractError("bad_schema", f"bad range {str(r)[:40]}")
        out.append((r[0], r[1]))
    return out

"""Edge fault test on the real stack (issue 3): the broker is down for 30 s and the edge
agent is SIGKILLed while it is down. After the agent and the broker are restarted, every
sample the agent produced reaches the broker and the store, and none is stored twice.

Every process is the real ``shopfloor`` command (simulated plant, edge, gateway with
the embedded store) or Mosquitto, all on loopback.

"Produced" is edge-side, as in ``test_faults.py``: a batch is committed to the outbox
before it is published, and with a replay window larger than the run the outbox keeps
every batch, acknowledged or not. Samples still in the agent's memory batch (at most
``max_batch_interval_s`` worth) when it is SIGKILLed were never produced by this
definition: they are lost by design and read again from the device where it still
holds them.
"""

from __future__ import annotations

import copy
import json
import signal
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from services import free_port, start_plant_stack
from test_faults import SCENARIO as FAULTS_SCENARIO
from test_faults import Key, embedded, last_stats, pending, produced, report, tune_for_faults

from shopfloor import contract
from shopfloor.supervisor import Supervisor, shopfloor_cmd
from shopfloor.up import write_configs

pytestmark = pytest.mark.e2e

BROKER_DOWN_S = 30
# test_faults' plant, shorter and without press-02
SCENARIO = copy.deepcopy(FAULTS_SCENARIO) | {
    "seed": 7, "timeline": {"lead_in_s": 2, "duration_s": 50, "lead_out_s": 2}}
SCENARIO["areas"][0]["lines"][0]["machines"] = SCENARIO["areas"][0]["lines"][0]["machines"][:2]


class Witness:
    """A persistent-session subscriber on the broker: every data message it forwards."""

    def __init__(self, port: int):
        self.lock = threading.Lock()
        self.keys: set[Key] = set()
        self.deliveries: dict[tuple[str, int], int] = {}  # (agent, seq) -> times received
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id="edge-faults-witness", clean_session=False)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(contract.subscription("data"), 1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "witness: no SUBACK"

    def _on_message(self, _c, _u, msg) -> None:
        doc = json.loads(msg.payload)
        asset = "/".join(msg.topic.split("/")[2:7])
        with self.lock:
            k = (doc["agent"], doc["seq"])
            self.deliveries[k] = self.deliveries.get(k, 0) + 1
            self.keys.update((asset, s["tag"], int(s["ts"])) for s in doc["samples"])

    def snapshot(self) -> tuple[set[Key], dict[tuple[str, int], int]]:
        with self.lock:
            return set(self.keys), dict(self.deliveries)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.timeout(240)
def test_broker_down_30s_and_edge_sigkilled_meanwhile_loses_nothing(tmp_path, mosquitto):
    t_start = time.monotonic()
    files = write_configs(tmp_path / "stack", SCENARIO, mqtt_port=mosquitto.port,
                          http_port=free_port())
    outbox = files.workdir / "outbox.db"
    tune_for_faults(files)

    sup = Supervisor(tmp_path / "logs")
    gw_log, edge_log = sup.logdir / "gateway.log", sup.logdir / "edge.log"
    edge_argv = shopfloor_cmd("edge", "--config", str(files.edge))

    def count() -> int:
        return len(produced(outbox)) if outbox.exists() else 0

    witness = Witness(mosquitto.port)
    try:
        plant, _, edge_proc = start_plant_stack(sup, files, edge_argv=edge_argv, outbox=outbox)
        time.sleep(6)

        n_kill_broker = count()
        assert n_kill_broker > 0, "the edge produced nothing before the fault"
        mosquitto.kill()  # SIGKILL
        t_down = time.monotonic()
        time.sleep(BROKER_DOWN_S / 2)

        n_kill_edge, backlog = count(), pending(outbox)
        edge_proc.send_signal(signal.SIGKILL)
        edge_proc.wait(10)
        time.sleep(1)
        sup.procs = [(n, p) for n, p in sup.procs if n != "edge"]
        edge_proc = sup.start("edge", edge_argv, lambda: True)  # the broker is still down
        time.sleep(max(0.0, BROKER_DOWN_S - (time.monotonic() - t_down)))

        n_restart_broker, backlog_at_restart = count(), pending(outbox)
        down_s = time.monotonic() - t_down
        mosquitto.start()

        plant.wait(timeout=120)
        assert plant.returncode == 0
        assert edge_proc.poll() is None, "the restarted edge agent exited"
        # the edge drains its outbox; the gateway stores (and asks for gaps, if any)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            want, got = produced(outbox), embedded(files.store)
            if pending(outbox) == 0 and set(got) == set(want) \
                    and set(want) <= witness.snapshot()[0]:
                break
            time.sleep(1)
        time.sleep(2)  # nothing arrives twice afterwards
        want, got = produced(outbox), embedded(files.store)
        seen, deliveries = witness.snapshot()
        w, g = set(want), set(got)
        redelivered = sum(n - 1 for n in deliveries.values())
        print(f"\nbroker down {down_s:.1f}s; edge SIGKILLed after {BROKER_DOWN_S / 2:.0f}s "
              f"of it and restarted while it was still down")
        print(f"produced before: broker kill {n_kill_broker}, edge kill {n_kill_edge} "
              f"(unacked {backlog} batches), broker restart {n_restart_broker} "
              f"(unacked {backlog_at_restart} batches)")
        print(report("embedded", want, got))
        print(f"broker: {len(seen & w)} of {len(w)} produced samples seen by the witness "
              f"(missing {len(w - seen)}), {len(deliveries)} batches, "
              f"{redelivered} delivered more than once")
        print(f"outbox still unacknowledged: {pending(outbox)} batches")
        print("gateway:", last_stats(gw_log, "gateway: messages="))
        print("edge:", last_stats(edge_log, "stats: read="))
        print(f"test duration {time.monotonic() - t_start:.1f}s")

        # the fault happened where intended: a backlog built up across the SIGKILL
        assert backlog > 0 and backlog_at_restart > backlog
        assert n_restart_broker > n_kill_edge > n_kill_broker
        assert len(w) > 100
        assert pending(outbox) == 0, "outbox not drained"
        assert not w - seen, f"{len(w - seen)} produced samples never reached the broker"
        assert g == w, report("embedded", want, got)
        assert len(got) == len(w)  # one row per sample, none twice
    finally:
        witness.close()
        sup.stop_all()

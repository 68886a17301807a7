"""Our edge agent as a Sparkplug B edge node, our gateway its primary host, on real
Mosquitto and simulators: the gateway is killed for 30 s while the machines run. Every
sample the agent read arrives after it is back, flagged historical (as an independent
host application, Tahu's JavaScript codec, sees it), none twice in the store, and the
OEE from the API matches the simulators' truth."""

from __future__ import annotations

import signal
import time

import pytest
from services import start_plant_stack
from sparkplug_peers import JsHost
from sparkplug_stack import (
    MACHINES,
    NODE,
    SHIFT_S,
    outbox_samples,
    sparkplug_stack,
    store_samples,
)
from test_e2e import check_against_truth, start_server, wait_until

from shopfloor.simulators.truth import load_truth
from shopfloor.supervisor import Supervisor, shopfloor_cmd

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
OFFLINE_S = 30


def norm(v: object) -> object:
    return v if isinstance(v, str) else float(v)  # type: ignore[arg-type]


def test_primary_host_offline_30s_every_sample_arrives_once_flagged_historical(
        tmp_path, mosquitto):
    files = sparkplug_stack(tmp_path / "stack", mosquitto.port)
    outbox = tmp_path / "stack" / "outbox.db"
    observer = JsHost(mosquitto.port)  # not the primary host: it only watches
    sup = Supervisor(tmp_path / "logs")
    try:
        plant, gateway, _edge = start_plant_stack(sup, files)
        wait_until(lambda: files.store.exists() and len(store_samples(files.store)) > 20, 30,
                   "data flowing")
        time.sleep(2)
        gateway.send_signal(signal.SIGKILL)  # the broker sends its STATE death
        gateway.wait(10)
        off_ns = time.time_ns()
        death = observer.wait_for(lambda ev: next((e for e in ev if e["type"] == "NDEATH"),
                                                  None), 15, "the node ending its session")
        assert death["node"] == NODE
        time.sleep(max(0.0, OFFLINE_S - (time.time_ns() - off_ns) / 1e9))
        on_ns = time.time_ns()
        n_births = len(observer.of("NBIRTH"))
        assert n_births == 1  # no birth while the primary host was offline
        sup.start("gateway-again", shopfloor_cmd("gateway", "--config", str(files.gateway)),
                  lambda: True)
        plant.wait(timeout=SHIFT_S + 60)
        assert plant.returncode == 0

        def caught_up() -> bool:
            stored = {(a, t, ts, norm(v)) for a, t, ts, v, _q in store_samples(files.store)}
            return {(a, t, ts, norm(v)) for a, t, ts, v in outbox_samples(outbox)} <= stored

        wait_until(caught_up, 60, "every sample the agent read in the store")
        read = outbox_samples(outbox)
        rows = store_samples(files.store)
        extra = [r for r in rows if (r[0], r[1], r[2], r[3]) not in read
                 and (r[0], r[1], r[2]) not in {(a, t, ts) for a, t, ts, _ in read}]
        # beyond what was read: only the gateway's OFFLINE at the node's death
        assert extra and all(r[1] == "state" and r[3] == "OFFLINE" and r[4] == "bad"
                             for r in extra), extra[:5]
        assert len(rows) == len(read) + len(extra)  # none twice
        in_gap = {(a.rsplit("/", 1)[1], t, ts // 10**6) for a, t, ts, _ in read
                  if off_ns + 10**9 < ts < on_ns - 10**9}
        assert len(in_gap) > 50
        historical = {(e["device"], m["name"], m["timestamp"]) for e in observer.of("DDATA")
                      for m in e["metrics"] if m["historical"]}
        assert in_gap <= historical, sorted(in_gap - historical)[:5]
        assert len(observer.of("NBIRTH")) == 2

        truth = load_truth(files.truth)
        url = start_server(sup, "server", files.server)
        window = truth.shift_window()
        for scope, ids in [*((m, [m]) for m in MACHINES), ("acme/plant1", MACHINES)]:
            got = check_against_truth(url, truth, scope, ids, window)
            assert got["times_s"]["OFFLINE"] < 0.5, (scope, got["times_s"])
    finally:
        observer.close()
        sup.stop_all()

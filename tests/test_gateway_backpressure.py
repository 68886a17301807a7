"""Backpressure on real Mosquitto: while the store is down the gateway acknowledges nothing
and holds at most its bounded queue (+ the batch being retried + the one message paho's
thread is blocked on); the broker keeps the rest. Once the store is back, every sample is
stored exactly once."""

from __future__ import annotations

import time

from test_gateway import FlakyWriter, Publisher, batches, gateway_cfg, wait_until

from shopfloor.gateway.service import Gateway
from shopfloor.storage.sqlite import SqliteStore

QUEUE = 5
MESSAGES = 300


def test_store_down_stops_acks_and_bounds_what_the_gateway_holds(mosquitto, tmp_path):
    cfg = gateway_cfg(mosquitto, tmp_path, queue_max_messages=QUEUE, retry_max_s=0.1,
                      batch={"max_samples": 10, "max_interval_s": 0.05})
    writer = FlakyWriter(SqliteStore(tmp_path / "down.db"))
    writer.broken = True
    gw = Gateway(cfg, writers=[writer])
    gw.start()
    pub = Publisher(mosquitto.port)
    sent = batches(MESSAGES, 10, seq0=1)
    try:
        assert gw.wait_ready(10)
        infos = [pub.client.publish(t, p, qos=1) for t, p, _ in sent]
        for info in infos:
            info.wait_for_publish(30)  # the broker has them all (PUBACK to the publisher)
        wait_until(lambda: gw.stats().write_errors >= 5, 20, "write retries")
        held = []
        for _ in range(10):  # sampled over a second: never more than the bound
            s = gw.stats()
            held.append(s.messages)
            assert s.queue_depth <= QUEUE
            assert s.samples_stored == 0
            time.sleep(0.1)
        print(f"\nstore down: gateway took {max(held)} of {MESSAGES} messages "
              f"(queue {QUEUE}), stored 0")
        assert max(held) <= QUEUE + 2  # queue + the batch retried + one blocked in paho
        writer.broken = False  # the store is back
        wait_until(lambda: gw.stats().samples_stored == MESSAGES * 10, 60, "all stored")
        time.sleep(0.3)
        assert gw.stats().samples_stored == MESSAGES * 10
        assert gw.gaps.ranges == {"edge-1": [(1, MESSAGES)]}  # every seq, no gap
    finally:
        pub.close()
        gw.stop()
    with SqliteStore(tmp_path / "down.db") as store:
        assert store.count() == MESSAGES * 10

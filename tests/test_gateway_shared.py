"""Two gateways on one shared subscription ($share/...) on real Mosquitto: every sample is
stored exactly once, both take part, and the seq ranges they share through one embedded
store show no gap (so neither asks for a replay)."""

from __future__ import annotations

import time

from test_gateway import Publisher, batches, gateway_cfg, wait_until

from shopfloor.gateway.service import Gateway
from shopfloor.storage.sqlite import SqliteStore


def test_two_gateways_split_one_stream_and_store_each_sample_once(mosquitto, tmp_path):
    gws = [Gateway(gateway_cfg(mosquitto, tmp_path, client_id=f"gw-{i}",
                               share_group="gateways", completeness={"timeout_s": 0.5}))
           for i in range(2)]
    for gw in gws:
        gw.start()
        assert gw.wait_ready(10)
    pub = Publisher(mosquitto.port)
    sent = batches(400, 25, seq0=1)
    expected = sum(n for *_, n in sent)
    try:
        for topic, payload, _ in sent:
            pub.client.publish(topic, payload, qos=1)
        wait_until(lambda: sum(g.stats().samples_stored for g in gws) >= expected, 60,
                   "both gateways to store the stream")
        time.sleep(2.0)  # longer than the gap timeout: no gap may be open, none asked for
        stats = [g.stats() for g in gws]
        print("\n" + "\n".join(s.line() for s in stats))
        assert sum(s.samples_stored for s in stats) == expected  # none twice
        assert all(s.samples_stored > 0 for s in stats)  # the group split the stream
        assert all(s.gaps_open == 0 and s.replay_requests == 0 for s in stats)
    finally:
        pub.close()
        for gw in gws:
            gw.stop()
    with SqliteStore(tmp_path / "store.db") as store:
        assert store.count() == expected
        assert store.seq_ranges() == {"edge-1": [(1, 400)]}

"""Two gateways on one shared subscription ($share/...) on real Mosquitto: every sample is
stored exactly once, both take part, and the seq ranges they share through one embedded
store close every gap: each gateway counts the other's seqs as stored once written.

A replay may still be asked for while the other gateway's write lags past the gap timeout
(seen in CI: gw-0 asked for 18 seqs of gw-1's backlog after 0.5 s on a loaded box); that is
harmless by design (answered from the edge's outbox, stored once) and a matter of load, so
the test asserts the outcome, not the count: no gap left open, none given up."""

from __future__ import annotations

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
        # Not sharing the ledger, each would keep the other's seqs open until given up.
        wait_until(lambda: all(g.stats().gaps_open == 0 for g in gws), 10,
                   "both gateways to see every seq stored")
        stats = [g.stats() for g in gws]
        print("\n" + "\n".join(s.line() for s in stats))
        assert sum(s.samples_stored for s in stats) == expected  # none twice
        assert all(s.samples_stored > 0 for s in stats)  # the group split the stream
        assert all(s.seqs_lost == 0 for s in stats)
    finally:
        pub.close()
        for gw in gws:
            gw.stop()
    with SqliteStore(tmp_path / "store.db") as store:
        assert store.count() == expected
        assert store.seq_ranges() == {"edge-1": [(1, 400)]}

"""Prometheus metrics of the gateway on real Mosquitto: scraped over HTTP, they agree
with what was sent; off by default."""

from __future__ import annotations

import httpx
from services import free_port
from test_gateway import MALFORMED, Publisher, batches, gateway_cfg, wait_until

from shopfloor.gateway.service import Gateway


def scrape(url: str) -> dict[str, float]:
    out = {}
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_endpoint(mosquitto, tmp_path):
    assert Gateway(gateway_cfg(mosquitto, tmp_path)).metrics is None  # off by default
    port = free_port()
    gw = Gateway(gateway_cfg(mosquitto, tmp_path, metrics={"host": "127.0.0.1", "port": port}))
    gw.start()
    pub = Publisher(mosquitto.port)
    try:
        assert gw.wait_ready(10)
        sent = batches(20, 10, seq0=1)
        for topic, payload, _ in sent:
            pub.publish(topic, payload)
        for _, topic, payload in MALFORMED[:3]:
            pub.publish(topic, payload)
        wait_until(lambda: gw.stats().samples_stored == 200 and gw.stats().messages == 23)
        m = scrape(f"http://127.0.0.1:{port}/metrics")
        assert m["shopfloor_gateway_samples_in_total"] == 200
        assert m["shopfloor_gateway_samples_out_total"] == 200
        assert m["shopfloor_gateway_messages_total"] == 23
        assert m['shopfloor_gateway_rejects_total{reason="bad_json"}'] == 1
        assert m['shopfloor_gateway_rejects_total{reason="bad_value"}'] == 1
        assert m['shopfloor_gateway_rejects_total{reason="bad_timestamp"}'] == 1
        assert m["shopfloor_gateway_batch_latency_seconds_count"] >= 1
        assert m["shopfloor_gateway_queue_depth"] == 0 and m["shopfloor_gateway_connected"] == 1
        assert m["shopfloor_gateway_gaps_open"] == 0
        assert m["shopfloor_gateway_replay_requests_total"] == 0
    finally:
        pub.close()
        gw.stop()
    try:
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except httpx.HTTPError:
        pass
    else:
        raise AssertionError("metrics endpoint still up after stop()")

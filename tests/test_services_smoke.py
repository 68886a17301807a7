"""The test harness's real services start, answer and stop."""

import paho.mqtt.client as mqtt


def test_mosquitto_round_trip(mosquitto):
    got = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda _c, _u, m: got.append(m.payload)
    c.connect("127.0.0.1", mosquitto.port)
    c.subscribe("t/#", qos=1)
    c.loop_start()
    c.publish("t/x", b"hello", qos=1).wait_for_publish(5)
    import time
    deadline = time.time() + 5
    while not got and time.time() < deadline:
        time.sleep(0.05)
    c.loop_stop()
    assert got == [b"hello"]


def test_influxdb_write_and_query(influxdb):
    import httpx
    r = httpx.post(f"{influxdb.url}/write", params={"db": influxdb.database, "precision": "ns"},
                   content=b"samples,device=a value=2.5 1763779200000000000")
    assert r.status_code == 204
    res = influxdb.query("SELECT value FROM samples")
    assert res["results"][0]["series"][0]["values"][0][1] == 2.5

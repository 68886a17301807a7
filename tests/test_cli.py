"""Every command fails at start on a bad config, naming the file and the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

BAD = {
    "simulate": ("--scenario", "seed: 1\nenterprise: {id: acme}\nsite: {id: p}\n"
                 "timeline: {lead_in_s: 1, duration_s: 5, lead_out_s: 1}\n"
                 "areas: [{id: a, lines: [{id: l, machines: "
                 "[{id: m, protocol: opcua, port: 4840, speed_factr: 2}]}]}]\n",
                 "speed_factr"),
    "edge": ("--config", "agent_id: e1\nmqtt: {host: 127.0.0.1, port: nope}\n"
             "outbox: {path: o.db}\ndevices: []\n", "mqtt.port"),
    "gateway": ("--config", "mqtt: {host: 127.0.0.1}\nstore: {embeded: {path: s.db}}\n",
                "store.embeded"),
    "server": ("--config", "registry: r.yaml\nstore: {embedded: {path: s.db}}\n"
               "oee: {stale_after_s: -1}\n", "oee.stale_after_s"),
}


@pytest.mark.parametrize("command", sorted(BAD))
def test_bad_config_fails_at_start_naming_file_and_key(tmp_path, command):
    flag, text, key = BAD[command]
    path = tmp_path / f"{command}.yaml"
    path.write_text(text)
    r = subprocess.run([sys.executable, "-m", "shopfloor", command, flag, str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert str(path) in r.stderr and key in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "shopfloor", "gateway", "--config",
                        str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "file not found" in r.stderr


@pytest.mark.parametrize("command", ["up", "simulate", "edge", "gateway", "server"])
def test_help_lists_options(command):
    r = subprocess.run([sys.executable, "-m", "shopfloor", command, "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage: shopfloor " + command in r.stdout

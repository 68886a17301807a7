"""Commissioning against node-opcua: `shopfloor edge discover` prints nsu= node ids and a
whole config that passes `shopfloor edge check` as printed (tags reading bad or uncertain
right now are read, and noted), also after the server's namespace table changed; a
secure-only server is browsed with the agent's certificate; a certificate the server does
not trust is one line naming it, in `edge check`, `edge discover` and the agent's log."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from peers import NodeOpcUa

pytestmark = pytest.mark.timeout(240)

VARS = [{"name": "State", "type": "Int32", "value": 1},
        {"name": "PartCount", "type": "UInt32", "value": 3},
        {"name": "Waiting", "type": "Double", "value": 0.0},
        {"name": "Text", "type": "LocalizedText", "value": {"locale": "en", "text": "x"}}]


def shopfloor(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shopfloor", *args], capture_output=True,
                          text=True, timeout=timeout)


def discover(peer: NodeOpcUa, *args: str) -> subprocess.CompletedProcess:
    return shopfloor("edge", "discover", peer.url, *args)


def check(tmp_path: Path, doc: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "skeleton.yaml"
    path.write_text(yaml.safe_dump(doc))
    return shopfloor("edge", "check", "--config", str(path))


def test_discover_skeleton_passes_its_own_check_after_a_namespace_change(tmp_path, mosquitto):
    with NodeOpcUa(tmp_path / "peer", VARS) as peer:
        peer.command(set="Waiting", value=0.0, status="BadWaitingForInitialData")
        out = discover(peer)
        assert out.returncode == 0, out.stdout + out.stderr
        doc = yaml.safe_load(out.stdout)
        doc["mqtt"]["port"] = mosquitto.port
        nodes = [t["node"] for t in doc["devices"][0]["tags"]]
        assert nodes == [f"nsu=urn:peer:machine;s=Machine.{v['name']}" for v in VARS]
        first = check(tmp_path, doc)
    assert first.returncode == 0, first.stdout
    assert "4/4" in first.stdout and "1 read bad or uncertain now" in first.stdout
    # the same skeleton against a server whose namespace table changed (urn:peer:machine 3)
    with NodeOpcUa(tmp_path / "peer", VARS, port=peer.port, extra_namespace=True) as again:
        assert again.ns == 3
        second = check(tmp_path, doc)
    assert second.returncode == 0 and "4/4" in second.stdout, second.stdout


def _trust(peer: NodeOpcUa) -> None:
    """What the server's operator does: move the rejected certificate to the trusted ones."""
    for cert in (peer.pki / "rejected").glob("*.pem"):
        shutil.move(cert, peer.pki / "trusted" / "certs" / cert.name)


def test_untrusted_certificate_is_one_line_naming_it_then_secure_discover(tmp_path, mosquitto):
    made = shopfloor("edge", "cert", "--out", str(tmp_path / "edge"))
    assert made.returncode == 0, made.stderr
    cert, key = tmp_path / "edge" / "cert.der", tmp_path / "edge" / "key.pem"
    with NodeOpcUa(tmp_path / "peer", VARS[:1], secure_only=True) as peer:
        server_cert = peer.pki / "own" / "certs" / "certificate.pem"
        secure = ["--cert", str(cert), "--key", str(key), "--server-cert", str(server_cert)]
        refused = discover(peer, *secure)
        doc = {"agent_id": "edge-sec", "mqtt": {"port": mosquitto.port},
               "outbox": {"path": str(tmp_path / "outbox.db")},
               "devices": [{"id": "cnc", "protocol": "opcua", "endpoint": peer.url,
                            "path": {"enterprise": "e", "site": "s", "area": "a", "line": "l"},
                            "security": {"certificate": str(cert), "private_key": str(key),
                                         "server_certificate": str(server_cert)},
                            "tags": [{"name": "State", "node": peer.node("State")}]}]}
        not_trusted = check(tmp_path, doc)
        log = tmp_path / "agent.log"
        (tmp_path / "edge.yaml").write_text(yaml.safe_dump(doc))
        with log.open("wb") as out:
            agent = subprocess.Popen([sys.executable, "-m", "shopfloor", "edge", "--config",
                                      str(tmp_path / "edge.yaml")], stdout=out,
                                     stderr=subprocess.STDOUT)
            time.sleep(8)  # several retries
            agent.terminate()
            assert agent.wait(20) == 0
    _trust(peer)  # the operator trusts the certificate and restarts the server
    with NodeOpcUa(tmp_path / "peer", VARS[:1], port=peer.port, secure_only=True) as peer:
        browsed = discover(peer, *secure)
        trusted = check(tmp_path, doc)
    for out in (refused.stdout + refused.stderr, not_trusted.stdout + not_trusted.stderr,
                log.read_text()):
        assert "Traceback" not in out and "AssertionError" not in out, out
        assert "asyncua" not in out, out  # the library's own lines: DEBUG only
        assert f"trust this agent's certificate {cert}" in out, out
    assert refused.returncode == 1 and len(refused.stdout.splitlines()) == 1, refused.stdout
    assert not_trusted.returncode == 1
    assert log.read_text().count("device disconnected") == 1  # once, not per retry
    assert browsed.returncode == 0, browsed.stdout + browsed.stderr
    skeleton = yaml.safe_load(browsed.stdout)
    assert skeleton["devices"][0]["security"]["certificate"] == str(cert)
    assert [t["node"] for t in skeleton["devices"][0]["tags"]] == [peer.node("State")]
    assert trusted.returncode == 0, trusted.stdout

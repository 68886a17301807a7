"""Clean exits (issue 17, point 7): `shopfloor server` exits 0 on SIGTERM as on SIGINT
(uvicorn re-raises the signal after its graceful stop: the default SIGTERM handler made
that 143); Mosquitto as `shopfloor up` configures it writes its persistence file."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml
from services import free_port, mosquitto
from test_e2e import start_server

from shopfloor.supervisor import Supervisor

REGISTRY = Path(__file__).parents[1] / "server" / "registry.sample.yaml"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_exits_0_on_sigterm_and_sigint(tmp_path, sig):
    (tmp_path / "registry.yaml").write_text(REGISTRY.read_text())
    cfg = tmp_path / "server.yaml"
    cfg.write_text(yaml.safe_dump({
        "registry": "registry.yaml", "store": {"embedded": {"path": str(tmp_path / "s.db")}},
        "http": {"host": "127.0.0.1", "port": free_port()}}))
    sup = Supervisor(tmp_path / "logs")
    try:
        start_server(sup, "server", cfg)
        _, proc = sup.procs[0]
        proc.send_signal(sig)
        assert proc.wait(30) == 0, (tmp_path / "logs" / "server.log").read_text()
    finally:
        sup.stop_all()


def test_mosquitto_as_root_saves_its_persistence_file(tmp_path):
    """As root, Mosquitto used to drop to its own user and fail to save in tmp_path."""
    with mosquitto(tmp_path / "m") as broker:
        pass
    assert broker.proc.returncode == 0
    log = (tmp_path / "m" / "mosquitto.log").read_text()
    assert "Error saving" not in log and "Permission denied" not in log, log
    assert (tmp_path / "m" / "mosquitto.db").stat().st_size > 0

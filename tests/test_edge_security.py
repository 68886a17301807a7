"""OPC UA security on loopback: `shopfloor edge cert`, then SignAndEncrypt / Sign sessions
with certificates and a user name against the simulator serving secure endpoints only;
an untrusted server certificate and a wrong password are refused."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from asyncua import ua
from services import free_port

from shopfloor.cli import main as cli
from shopfloor.contract import DevicePath, Sample
from shopfloor.edge.config import OpcUaDevice
from shopfloor.edge.opcua.certs import create_cert
from shopfloor.edge.opcua.client import connect
from shopfloor.edge.opcua.driver import OpcUaDriver
from shopfloor.simulators.opcua_machine import OpcUaMachine, ServerOptions
from shopfloor.simulators.scenario import MachineSpec

pytestmark = pytest.mark.timeout(120)
P = ua.SecurityPolicyType
PASSWORD = "op-secret-9"


class Sink:
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def sample(self, device: str, sample: Sample) -> None:
        self.samples.append(sample)

    def connected(self, device: str, up: bool, detail: str, since_ns: int) -> None:
        pass


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    assert cli(["edge", "cert", "--out", str(root / "agent"), "--common-name", "edge-t",
                "--application-uri", "urn:shopfloor:edge", "--days", "30"]) == 0
    assert cli(["edge", "cert", "--out", str(root / "agent")]) == 1  # never overwrites a key
    cert, key = create_cert(root / "server", common_name="sim", days=30,
                            application_uri="urn:shopfloor:sim:server", server=True)
    user_cert, user_key = create_cert(root / "user", common_name="operator-7", days=30,
                                      application_uri="urn:shopfloor:user:operator-7")
    stranger_cert, stranger_key = create_cert(root / "stranger", common_name="x", days=30,
                                              application_uri="urn:x")
    return {"user_cert": user_cert, "user_key": user_key, "stranger_cert": stranger_cert,
            "stranger_key": stranger_key, "cert": root / "agent" / "cert.der",
            "key": root / "agent" / "key.pem",
            "trusted": root / "agent" / "trusted", "server_cert": cert, "server_key": key,
            "empty": root / "agent" / "empty"}


def test_cert_files(pki):
    from cryptography import x509

    cert = x509.load_der_x509_certificate(pki["cert"].read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "urn:shopfloor:edge" in san.get_values_for_type(x509.UniformResourceIdentifier)
    assert cert.subject.rfc4514_string() == "CN=edge-t"
    assert stat.S_IMODE(pki["key"].stat().st_mode) == 0o600
    assert pki["trusted"].is_dir()


async def secure_machine(pki: dict[str, Path]) -> OpcUaMachine:
    spec = MachineSpec(path=DevicePath("e", "s", "a", "l", "m"), protocol="opcua",
                       host="127.0.0.1", port=free_port(), ideal_cycle_time_s=1,
                       speed_factor=1, reject_rate=0, durations_s={})
    sim = OpcUaMachine(spec, ServerOptions(
        certificate=pki["server_cert"], private_key=pki["server_key"],
        policies=[P.Basic256Sha256_SignAndEncrypt, P.Aes128Sha256RsaOaep_Sign,
                  P.Aes256Sha256RsaPss_SignAndEncrypt],
        application_uri="urn:shopfloor:sim:server", users={"operator": PASSWORD},
        user_certificates=[pki["user_cert"]]))
    await sim.start()
    return sim


def device(url: str, pki: dict[str, Path], policy: str, mode: str, trust: Path,
           password: str = PASSWORD) -> OpcUaDevice:
    return OpcUaDevice.model_validate({
        "id": "m", "protocol": "opcua", "endpoint": url, "timeout_s": 4,
        "path": {"enterprise": "e", "site": "s", "area": "a", "line": "l"},
        "security": {"policy": policy, "mode": mode, "certificate": str(pki["cert"]),
                     "private_key": str(pki["key"]), "trust_dir": str(trust)},
        "username": "operator", "password": password,
        "tags": [{"name": "state", "node": "ns=2;s=m.State"}]})


@pytest.mark.parametrize(("policy", "mode"), [
    ("Basic256Sha256", "SignAndEncrypt"), ("Aes128_Sha256_RsaOaep", "Sign"),
    ("Aes256_Sha256_RsaPss", "SignAndEncrypt")])
def test_secure_session_with_certificates_and_user(pki, policy, mode):
    asyncio.run(_secure(pki, policy, mode))


async def _secure(pki: dict[str, Path], policy: str, mode: str) -> None:
    trusted = pki["trusted"]
    (trusted / "sim.der").write_bytes(pki["server_cert"].read_bytes())
    sim = await secure_machine(pki)
    try:
        dev = device(sim.url, pki, policy, mode, trusted)
        client = await connect(dev)
        try:
            assert client.security_policy.Mode == getattr(ua.MessageSecurityMode, mode)
            assert client.security_policy.URI.endswith("#" + policy)
            assert await client.get_node("ns=2;s=m.State").read_value() == 0
        finally:
            await client.disconnect()
        sink = Sink()
        driver = OpcUaDriver(dev, sink, heartbeat_s=600)
        task = asyncio.create_task(driver.run())
        try:
            async with asyncio.timeout(20):
                while not sink.samples:
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert (sink.samples[0].tag, sink.samples[0].value) == ("state", 0)
    finally:
        await sim.stop()


@pytest.mark.parametrize(("fault", "error"), [
    ("untrusted_server", "BadCertificateUntrusted"), ("empty_trust_dir", "holds no certificate"),
    ("wrong_password", "BadUserAccessDenied"), ("no_security", "No matching endpoints")])
def test_refused_sessions(pki, fault, error):
    asyncio.run(_refused(pki, fault, error))


async def _refused(pki: dict[str, Path], fault: str, error: str) -> None:
    pki["empty"].mkdir(exist_ok=True)
    other = pki["empty"].parent / "other"  # trusts only the agent's own certificate
    other.mkdir(exist_ok=True)
    (other / "agent.der").write_bytes(pki["cert"].read_bytes())
    sim = await secure_machine(pki)
    try:
        trust = {"untrusted_server": other, "empty_trust_dir": pki["empty"]}.get(
            fault, pki["trusted"])
        (pki["trusted"] / "sim.der").write_bytes(pki["server_cert"].read_bytes())
        dev = device(sim.url, pki, "Basic256Sha256", "SignAndEncrypt", trust,
                     password="wrong" if fault == "wrong_password" else PASSWORD)
        if fault == "no_security":
            dev = dev.model_copy(update={"security": None})
        with pytest.raises(Exception) as info:  # noqa: B017 - asyncua raises several kinds
            await connect(dev)
        assert error in f"{type(info.value).__name__}: {info.value}"
        assert "wrong" not in str(info.value) and PASSWORD not in str(info.value)
    finally:
        await sim.stop()




@pytest.mark.parametrize("who", ["operator-7", "stranger"])
def test_certificate_user_identity(pki, who):
    asyncio.run(_user_cert(pki, who))


async def _user_cert(pki: dict[str, Path], who: str) -> None:
    (pki["trusted"] / "sim.der").write_bytes(pki["server_cert"].read_bytes())
    sim = await secure_machine(pki)
    try:
        key = "user" if who == "operator-7" else "stranger"
        dev = device(sim.url, pki, "Aes256_Sha256_RsaPss", "SignAndEncrypt", pki["trusted"])
        dev = OpcUaDevice.model_validate(
            dev.model_dump(exclude={"username", "password"}) | {
                "user_certificate": str(pki[f"{key}_cert"]),
                "user_private_key": str(pki[f"{key}_key"])})
        if who == "stranger":
            with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
                await connect(dev)
            return
        client = await connect(dev)
        try:
            assert await client.get_node("ns=2;s=m.State").read_value() == 0
        finally:
            await client.disconnect()
    finally:
        await sim.stop()

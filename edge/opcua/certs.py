"""``shopfloor edge cert``: the agent's OPC UA application certificate and private key.

``create_cert(out_dir, ...)`` writes ``cert.der`` (self-signed X.509 v3 with the
application URI as subjectAltName, as OPC UA requires) and ``key.pem`` (RSA 2048, mode
0600), and creates ``trusted/`` for the server certificates the agent trusts
(``security.trust_dir``). It never overwrites an existing key.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

CERT_NAME, KEY_NAME, TRUST_DIR = "cert.der", "key.pem", "trusted"


def create_cert(out_dir: Path | str, *, common_name: str, days: int, application_uri: str,
                server: bool = False) -> tuple[Path, Path]:
    """Write cert.der + key.pem into ``out_dir``; ``server`` makes a server certificate."""
    out = Path(out_dir)
    cert_path, key_path = out / CERT_NAME, out / KEY_NAME
    if key_path.exists():
        raise FileExistsError(f"{key_path} exists; remove it to make a new key")
    out.mkdir(parents=True, exist_ok=True)
    (out / TRUST_DIR).mkdir(exist_ok=True)
    key = generate_private_key()
    host = socket.gethostname()
    sans: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(application_uri), x509.DNSName(host),
        x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = generate_self_signed_app_certificate(key, common_name, {}, sans, [usage], days=days)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return cert_path, key_path


def run_create_cert(out_dir: Path | str, *, common_name: str, days: int,
                    application_uri: str) -> int:
    try:
        cert, key = create_cert(out_dir, common_name=common_name, days=days,
                                application_uri=application_uri)
    except (FileExistsError, OSError) as exc:
        print(f"shopfloor edge cert: {exc}")
        return 1
    trust = Path(out_dir) / TRUST_DIR
    print(f"certificate {cert}\nprivate key {key} (mode 0600)\ntrust list  {trust}/ "
          "(copy the server certificates you trust here)\n\n"
          "device config:\n"
          "  security:\n"
          "    policy: Basic256Sha256        # or Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss\n"
          "    mode: SignAndEncrypt          # or Sign\n"
          f"    certificate: {cert.resolve()}\n    private_key: {key.resolve()}\n"
          f"    trust_dir: {trust.resolve()}\n    application_uri: {application_uri}\n"
          "and trust the agent's certificate on the server.")
    return 0

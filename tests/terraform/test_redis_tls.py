"""The REDIS_URL Terraform builds (terraform/redis.tf) works against a TLS Redis with AUTH.

Memorystore with transit encryption serves TLS on 6378 with a certificate signed by a
per-instance CA that names no host. Terraform writes
``rediss://:AUTH@HOST:PORT/0?ssl_cert_reqs=required&ssl_check_hostname=false&ssl_ca_data=CA``.
Here a real redis-server runs the same way (a throwaway CA, a server certificate without
a usable name, a password) and the service's own client (shared/adapters/redis_client.py)
connects with a URL rendered from the Terraform template. A client given another CA is
refused: the pinned CA is the check.
"""

from __future__ import annotations

import datetime
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest
import redis

from shared.adapters.redis_client import redis_client
from shared.settings import Settings
from tests.terraform.hcl import load

PASSWORD = "f3b0c1d2-e3f4-4a5b-9c6d-7e8f90a1b2c3"


def _ca_and_server_cert(folder: Path) -> tuple[str, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    ca_key, server_key = key(), key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Instance CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redis-instance")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.crt", folder / "server.key"
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, str]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH to run with TLS")
    ca_pem, cert_file, key_file = _ca_and_server_cert(tmp_path)
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port", "0",
            "--tls-port", str(port),
            "--bind", "127.0.0.1",
            "--tls-cert-file", str(cert_file),
            "--tls-key-file", str(key_file),
            "--tls-auth-clients", "no",
            "--requirepass", PASSWORD,
            "--save", "",
            "--appendonly", "no",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.skip(f"this redis-server cannot serve TLS: {output[-300:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, ca_pem
    finally:
        process.terminate()
        process.wait(timeout=5)


def _terraform_url(host: str, port: int, ca_pem: str) -> str:
    """terraform/redis.tf's format() with Terraform's urlencode (spaces as '+')."""
    template = re.search(r'format\(\s*"([^"]+)"', load().locals["redis_url"])
    assert template
    return template.group(1) % (quote_plus(PASSWORD), host, port, quote_plus(ca_pem))


def test_the_terraform_url_reaches_a_tls_redis_with_auth(tls_redis: tuple[int, str]) -> None:
    port, ca_pem = tls_redis
    settings = Settings(
        redis_url=_terraform_url("127.0.0.1", port, ca_pem),
        database_url="postgresql://u@127.0.0.1/d",
    )
    client = redis_client(settings)

    try:
        assert client.ping() is True
        client.set("wh:tls-check", "1", ex=5)
        assert client.get("wh:tls-check") == "1"
    finally:
        client.close()


def test_a_client_pinned_to_another_ca_is_refused(
    tls_redis: tuple[int, str], tmp_path: Path
) -> None:
    port, _ = tls_redis
    (tmp_path / "other").mkdir()
    other_ca, _, _ = _ca_and_server_cert(tmp_path / "other")
    client = redis.Redis.from_url(_terraform_url("127.0.0.1", port, other_ca))

    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
        client.ping()
    client.close()

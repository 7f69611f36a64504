"""The server with TLS: secure clients get responses, while plaintext and untrusting clients get none."""

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recsearch import model_dir as md
from recsearch.cli.main import main
from recsearch.errors import InputError
from serving.server import BackgroundServer, ServerOptions, tls_credentials
from tests.serving.helpers import pb, pb_grpc, status_of, stub_for
from tests.serving.test_process import ROOT, start_serve


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for localhost and 127.0.0.1 with its key; return both paths.

    The test environment has no ``cryptography`` package, so the ``openssl`` command writes them.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed, so no test certificate can be made")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {result.stderr.strip()}")
    return cert, key


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(history_model_dir, certificate):
    cert, key = certificate
    running = BackgroundServer(ServerOptions(history_model_dir, port=0, tls_cert=cert, tls_key=key, reload_interval=0))
    yield running
    running.stop()


def secure_stub(address: str, ca: Path) -> tuple[grpc.Channel, pb_grpc.RecommenderServiceStub]:
    channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca.read_bytes()))
    return channel, pb_grpc.RecommenderServiceStub(channel)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_secure_client_gets_responses(tls_server, certificate, host):
    channel, stub = secure_stub(f"{host}:{tls_server.port}", certificate[0])
    with channel:
        response = stub.Recommend(pb.RecommendRequest(user_id="someone", k=3), timeout=10)
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert len(response.items) == 3
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_plaintext_client_fails(tls_server):
    channel, stub = stub_for(tls_server.port)
    with channel:
        assert status_of(stub.Recommend, pb.RecommendRequest(user_id="someone", k=3), timeout=5) == grpc.StatusCode.UNAVAILABLE


def test_client_trusting_another_ca_fails(tls_server, tmp_path):
    other_cert, _ = make_certificate(tmp_path / "other")
    channel, stub = secure_stub(f"127.0.0.1:{tls_server.port}", other_cert)
    with channel:
        assert status_of(stub.Recommend, pb.RecommendRequest(user_id="someone", k=3), timeout=5) == grpc.StatusCode.UNAVAILABLE


def test_tls_and_bearer_token_together(history_model_dir, certificate):
    cert, key = certificate
    running = BackgroundServer(
        ServerOptions(history_model_dir, port=0, tls_cert=cert, tls_key=key, token="s3cret", reload_interval=0)
    )
    try:
        channel, stub = secure_stub(f"127.0.0.1:{running.port}", cert)
        with channel:
            request = pb.RecommendRequest(user_id="someone", k=2)
            assert status_of(stub.Recommend, request) == grpc.StatusCode.UNAUTHENTICATED
            assert status_of(stub.Recommend, request, metadata=[("authorization", "Bearer s3cret")]) == grpc.StatusCode.OK
    finally:
        running.stop()


def test_recommend_cli_with_tls_ca(tls_server, certificate, history_model_dir):
    user_id = str(md.load_model_dir(history_model_dir).user_ids[0])
    address = f"127.0.0.1:{tls_server.port}"
    assert main(["recommend", "--addr", address, "--user", user_id, "--k", "3", "--tls-ca", str(certificate[0])]) == 0
    assert main(["recommend", "--addr", address, "--user", user_id, "--k", "3", "--timeout", "5"]) == 2


def test_recommend_cli_rejects_missing_ca_file(tmp_path):
    assert main(["recommend", "--addr", "127.0.0.1:1", "--user", "u", "--tls-ca", str(tmp_path / "absent.pem")]) == 2


def test_serve_command_with_tls_workers(history_model_dir, certificate):
    cert, key = certificate
    process, port, _ = start_serve(history_model_dir, "--tls-cert", str(cert), "--tls-key", str(key), "--workers", "2")
    try:
        channel, stub = secure_stub(f"127.0.0.1:{port}", cert)
        with channel:
            for _ in range(5):
                assert len(stub.Recommend(pb.RecommendRequest(user_id="someone", k=2), timeout=10).items) == 2
        plain_channel, plain_stub = stub_for(port)
        with plain_channel:
            assert status_of(plain_stub.Recommend, pb.RecommendRequest(user_id="x", k=2), timeout=5) == grpc.StatusCode.UNAVAILABLE
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


def test_key_of_other_certificate_rejected(history_model_dir, certificate, tmp_path):
    _, other_key = make_certificate(tmp_path / "other")
    with pytest.raises(InputError, match="not a PEM certificate chain and its private key"):
        tls_credentials(certificate[0], other_key)
    with pytest.raises(InputError, match="not a PEM certificate chain"):
        BackgroundServer(
            ServerOptions(history_model_dir, port=0, tls_cert=certificate[0], tls_key=other_key, reload_interval=0)
        )


def test_serve_command_rejects_invalid_key(history_model_dir, certificate, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    result = subprocess.run(
        [sys.executable, "-m", "recsearch.cli.main", "serve", str(history_model_dir), "--port", "0",
         "--tls-cert", str(certificate[0]), "--tls-key", str(garbage)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "--tls-key" in result.stdout + result.stderr


def test_encrypted_key_rejected(certificate, tmp_path):
    encrypted = tmp_path / "encrypted.pem"
    result = subprocess.run(
        ["openssl", "pkey", "-in", str(certificate[1]), "-aes256", "-passout", "pass:secret", "-out", str(encrypted)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    with pytest.raises(InputError, match="encrypted"):
        tls_credentials(certificate[0], encrypted)

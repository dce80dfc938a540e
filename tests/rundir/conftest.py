"""A real S3 server for the bucket tests: moto's server mode, started on 127.0.0.1 by the tests
(no mock of the client library). Each test gets its own bucket and the standard AWS environment
pointing at the server; ``BATCHFLUX_LEASE_S`` shortens the lease so takeovers happen in seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("obstore")
pytest.importorskip("moto.server")

SECRET = "s3cr3t-" + uuid.uuid4().hex  # must never show up in an object, a log or a message
LEASE_S = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen[bytes]

    def bucket(self) -> str:
        name = "b" + uuid.uuid4().hex[:20]
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 200
        return name


def start_moto(log: Path, port: int | None = None) -> S3Server:
    port = port or free_port()
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=2):
                return S3Server(endpoint, proc)
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited: {log.read_text()[-500:]}") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.proc.terminate()
    server.proc.wait(timeout=10)


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "BATCHFLUX_LEASE_S": str(LEASE_S),
    }


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket; the AWS environment set for this process (and children that inherit it)."""
    for key, value in aws_env(s3_server.endpoint).items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    return s3_server.bucket()


def all_objects(url: str) -> dict[str, bytes]:
    from batchflux.rundir.objects import open_object_store

    store = open_object_store(url)
    return {m.key: store.get(m.key) or b"" for m in store.list()}


def env_for_child(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **aws_env(endpoint)}

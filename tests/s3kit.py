"""Helpers for the bucket tests (tests/rundir/): a real S3 server, moto's server mode, started on
127.0.0.1 by the tests (no mock of the client library); the standard AWS environment pointing at it,
``BATCHFLUX_LEASE_S`` shortened so takeovers happen in seconds; readers of what a prefix holds.
Imported by name: pytest puts ``tests/`` on sys.path for its conftest.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

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


def aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "BATCHFLUX_LEASE_S": str(LEASE_S),
    }


def all_objects(url: str) -> dict[str, bytes]:
    from batchflux.rundir.objects import open_object_store

    store = open_object_store(url)
    return {m.key: store.get(m.key) or b"" for m in store.list()}


def env_for_child(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **aws_env(endpoint)}


def ledger_of(objects: dict[str, bytes]) -> list[dict[str, object]]:
    """The ledger a bucket prefix holds: its segments in order."""
    import json

    from batchflux.rundir.bucket import chain
    from batchflux.rundir.store import Meta

    metas, _ = chain([Meta(k, len(v)) for k, v in objects.items() if k.startswith("ledger/")])
    data = b"".join(objects[m.key] for m in metas)
    return [json.loads(line) for line in data.splitlines()]


def images_of(objects: dict[str, bytes]) -> dict[str, bytes]:
    """The images at the prefix's top level (thumbnails aside)."""
    return {k: v for k, v in objects.items() if k.endswith(".png") and "/" not in k}

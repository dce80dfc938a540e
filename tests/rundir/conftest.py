"""Fixtures for the bucket tests: moto's S3 server on 127.0.0.1 (started once) and a new bucket per
test with the standard AWS environment pointing at it (tests/s3kit.py has the helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("obstore")
pytest.importorskip("moto.server")

from s3kit import S3Server, aws_env, start_moto


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.proc.terminate()
    server.proc.wait(timeout=10)


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket; the AWS environment set for this process (and children that inherit it)."""
    for key, value in aws_env(s3_server.endpoint).items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    return s3_server.bucket()

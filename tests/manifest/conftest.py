"""Manifest test helpers: a scratch directory holding the sample images, and problem lists as text.

- ``mdir``: a temporary directory with ``images/`` (the four bundled JPEGs, writable copies).
- ``problems(path, overrides=None)``: the ``str()`` of every problem ``load_manifest`` raises, or []
  when the manifest loads.
- ``samples``: a writable copy of sample_manifests/.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from batchflux.manifest import ManifestError, load_manifest

SAMPLES = Path(__file__).resolve().parents[2] / "sample_manifests"
IMAGES = SAMPLES / "images"


@pytest.fixture
def mdir(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for image in IMAGES.glob("*.jpg"):
        (images / image.name).write_bytes(image.read_bytes())
    return tmp_path


@pytest.fixture
def problems() -> Callable[..., list[str]]:
    def run(path: Path, overrides: Mapping[str, str] | None = None) -> list[str]:
        try:
            load_manifest(path, overrides)
        except ManifestError as exc:
            caught = exc
        else:
            return []
        assert caught.total >= len(caught.problems) > 0
        return [str(p) for p in caught.problems]

    return run


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    """A writable copy of sample_manifests/."""
    target = tmp_path / "samples"
    shutil.copytree(SAMPLES, target, copy_function=shutil.copyfile)
    return target

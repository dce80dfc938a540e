"""The review tests' batch: its jobs, its manifest, one real run of it against the emulator.

Imported by name (``from reviewkit import ...``): pytest puts this folder on sys.path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from browserkit import EVIL, make_input

from batchflux import run_batch
from batchflux.emulator import DEFAULT_API_KEY, Emulator, EmulatorConfig
from batchflux.run.exitcodes import ExitCode
from batchflux.run.runner import RunResult

JOBS = [
    ("sunset", "Turn the sky into a warm sunset"),
    ("winter", "Cover the hills in fresh snow"),
    ("neon", "Make it a neon-lit night scene"),
    ("evil", EVIL),
    ("blocked", "nsfw version of this photo"),
    ("watercolour", "Paint it as a soft watercolour"),
    ("retro", "Give it a 1970s film look"),
]
FAILED = {"blocked"}
DONE = [j for j, _ in JOBS if j not in FAILED]


def write_manifest(root: Path, jobs: list[tuple[str, str]] = JOBS) -> Path:
    entries = []
    for i, (job_id, prompt) in enumerate(jobs):
        make_input(root / "photos" / f"{job_id}.png", 37 * i)
        entries.append({"id": job_id, "prompt": prompt, "input_image": f"photos/{job_id}.png", "seed": 7})
    manifest = root / "photos.yaml"
    defaults = {"aspect_ratio": "match_input_image", "output_format": "png"}
    manifest.write_text(yaml.safe_dump({"model": "flux-kontext-max", "defaults": defaults, "jobs": entries}))
    return manifest


def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(latency_mean=0.05, latency_sd=0.01, moderation_words=("nsfw",))


async def run_once(root: Path, emu: Emulator, out_dir: Path | None = None, **options: object) -> RunResult:
    """``run_batch`` of ``root/photos.yaml`` into ``out_dir`` (default ``root/out``)."""
    result = await run_batch(
        root / "photos.yaml",
        api_key=DEFAULT_API_KEY,
        out_dir=out_dir or root / "out",
        base_url=emu.base_url,
        **options,
    )
    assert result.exit_code in (ExitCode.OK, ExitCode.JOBS_FAILED), result.message
    assert result.out_dir is not None
    return result


@dataclass(frozen=True)
class Served:
    url: str  # as printed: http://127.0.0.1:PORT/?token=...
    out: Path

    @property
    def base(self) -> str:
        return self.url.split("/?", 1)[0]

    @property
    def token(self) -> str:
        return self.url.rsplit("token=", 1)[1]

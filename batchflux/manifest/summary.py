"""What a validated manifest will do: job counts by aspect ratio and format, inputs, cost (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from batchflux.manifest.schema import price_for
from batchflux.manifest.validate import Manifest


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    manifest: str
    model: str
    jobs: int
    aspect_ratios: dict[str, int]  # most common first
    output_formats: dict[str, int]
    local_input_jobs: int
    local_input_files: int  # distinct files, each uploaded once
    url_input_jobs: int
    no_input_jobs: int
    price_per_image: float
    estimated_cost: float
    warnings: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "manifest": self.manifest,
            "model": self.model,
            "jobs": self.jobs,
            "aspect_ratios": self.aspect_ratios,
            "output_formats": self.output_formats,
            "inputs": {
                "local_jobs": self.local_input_jobs,
                "local_files": self.local_input_files,
                "url_jobs": self.url_input_jobs,
                "none": self.no_input_jobs,
            },
            "price_per_image": self.price_per_image,
            "estimated_cost": self.estimated_cost,
            "warnings": list(self.warnings),
        }


def summarize(manifest: Manifest, price: float | None = None) -> ManifestSummary:
    """Counts and the cost estimate; ``price`` (USD per image) overrides the model's."""
    ratios: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    local_files = set()
    local = urls = 0
    for job in manifest.jobs:
        ratios[str(job.params.get("aspect_ratio", "(model default)"))] += 1
        formats[job.output_format] += 1
        if job.local_input is not None:
            local += 1
            local_files.add(job.local_input)
        elif job.params.get("input_image") is not None:
            urls += 1
    per_image = price_for(manifest.model, price)
    count = len(manifest.jobs)
    return ManifestSummary(
        manifest=str(manifest.path),
        model=manifest.model,
        jobs=count,
        aspect_ratios=dict(ratios.most_common()),
        output_formats=dict(formats.most_common()),
        local_input_jobs=local,
        local_input_files=len(local_files),
        url_input_jobs=urls,
        no_input_jobs=count - local - urls,
        price_per_image=per_image,
        estimated_cost=round(count * per_image, 6),
        warnings=manifest.warnings,
    )

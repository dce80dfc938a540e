"""Job identity: ids (explicit, derived or from a file stem) and parameter fingerprints (pure).

The canonical form of a job is compact, key-sorted JSON of ``{"model", "params"}`` with a local
``input_image`` replaced by ``"sha256:<content hash>"``: moving or renaming an input file changes
nothing, editing its pixels changes everything.

- derived id: the first :data:`DERIVED_ID_HEX` hex digits of the canonical form's sha256;
- fingerprint: sha256 of the canonical form plus the output path, first :data:`FINGERPRINT_HEX`
  hex digits. The ledger stores it; a job whose fingerprint changed is a new job.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
DERIVED_ID_HEX = 12
FINGERPRINT_HEX = 32
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid job id, or None."""
    if ID_PATTERN.fullmatch(value):
        return None
    if not value:
        return "must not be empty"
    if len(value) > 128:
        return f"is {len(value)} characters long; at most 128"
    bad = sorted({c for c in value if not ID_PATTERN.fullmatch(c)})
    shown = " ".join(repr(c) for c in bad[:5])
    return f"{value!r} may only hold letters, digits, '.', '_' and '-' (not {shown})"


def canonical(model: str, params: Mapping[str, Any], input_sha256: str | None) -> str:
    """The job's canonical JSON (see the module docstring)."""
    if input_sha256 is not None:
        params = {**params, "input_image": f"sha256:{input_sha256}"}
    return _ENCODER.encode({"model": model, "params": params})


def derived_id(canonical_form: str) -> str:
    return hashlib.sha256(canonical_form.encode()).hexdigest()[:DERIVED_ID_HEX]


def fingerprint(canonical_form: str, output: str) -> str:
    data = f"{canonical_form}\n{output}".encode()
    return hashlib.sha256(data).hexdigest()[:FINGERPRINT_HEX]


def stem_id(stem: str, suffix: str = "") -> str:
    """An id from a file stem: unsafe characters become ``_``, cut so that ``suffix`` still fits."""
    safe = _UNSAFE.sub("_", stem).strip("_") or "input"
    return safe[: 128 - len(suffix)] + suffix

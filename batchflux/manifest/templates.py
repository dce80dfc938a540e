"""Output file names: the ``output:`` template, rendered per job and confined to the run directory.

A template is Python format syntax over plain names only: ``{id}``, ``{ext}`` (``jpg``/``png``),
``{index}`` (0-based, so ``{index:05d}`` works) and parameter names. ``{input_image}`` gives the
input file's stem; other parameter values have every character outside ``A-Za-z0-9._-``
replaced by ``_`` and are cut to :data:`MAX_VALUE_CHARS`. No attribute or item access, no
conversions. The result must be a relative path of plain names (``/`` separates folders) that
does not leave the run directory or overwrite the run's own files.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

DEFAULT_TEMPLATE = "{id}.{ext}"
BUILTIN_FIELDS = ("id", "ext", "index")
RUN_FILES = frozenset(
    {"ledger.jsonl", "summary.json", "report.html", "run.lock", "batchflux.log"}
    | {"results.jsonl", "results.csv", "jobs.csv"}
)
MAX_VALUE_CHARS = 80
MAX_OUTPUT_CHARS = 1024
MAX_NAME_BYTES = 255
EXTENSIONS = {"jpg": (".jpg", ".jpeg"), "png": (".png",)}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DRIVE = re.compile(r"^[A-Za-z]:")


class TemplateError(Exception):
    """Why a template, or its rendering for one job, is unusable (the message is for the user)."""


@dataclass(frozen=True, slots=True)
class OutputTemplate:
    text: str
    params: tuple[str, ...]  # parameter names the template uses

    @classmethod
    def parse(cls, text: str, known_params: Collection[str] | None) -> OutputTemplate:
        """Check the template's syntax and names; ``known_params`` None accepts any name."""
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise TemplateError(f"{text!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
        params: list[str] = []
        for _, name, spec, conversion in parts:
            if name is None:
                continue
            if not _NAME.fullmatch(name):
                raise TemplateError(f"{text!r}: {{{name}}} is not a plain field name")
            if conversion is not None or (spec and "{" in spec):
                raise TemplateError(f"{text!r}: {{{name}}} may only have a format spec like {{index:05d}}")
            if name in BUILTIN_FIELDS:
                continue
            if known_params is not None and name not in known_params:
                known = ", ".join((*BUILTIN_FIELDS, *sorted(known_params)))
                raise TemplateError(f"{text!r}: unknown field {{{name}}}; use {known}")
            params.append(name)
        if not text.strip():
            raise TemplateError("the output template is empty")
        template = cls(text, tuple(dict.fromkeys(params)))
        sample = template.render("x", 0, "png", {name: "x" for name in template.params})
        problem = path_problem(sample)
        if problem:
            raise TemplateError(f"{text!r} {problem}")
        return template

    def render(self, job_id: str, index: int, ext: str, params: Mapping[str, Any]) -> str:
        if self.text == DEFAULT_TEMPLATE:
            return f"{job_id}.{ext}"
        values: dict[str, Any] = {"id": job_id, "ext": ext, "index": index}
        for name in self.params:
            value = params.get(name)
            if value is None:
                raise TemplateError(f"{{{name}}} has no value for this job")
            values[name] = _stem(str(value)) if name == "input_image" else safe_text(value)
        try:
            return self.text.format(**values)
        except (ValueError, TypeError) as exc:
            raise TemplateError(f"{self.text!r}: {exc}") from None


def safe_text(value: Any) -> str:
    text = _UNSAFE.sub("_", str(value))[:MAX_VALUE_CHARS]
    return "_" if text.strip(".") == "" else text


def _stem(location: str) -> str:
    path = urlsplit(location).path if "://" in location else location
    return safe_text(PurePosixPath(path.replace("\\", "/")).stem or "input")


def path_problem(rel: str) -> str | None:
    """Why ``rel`` is not an acceptable output path inside the run directory (a phrase), or None."""
    if not rel:
        return "is empty"
    if len(rel) > MAX_OUTPUT_CHARS:
        return f"is longer than {MAX_OUTPUT_CHARS} characters"
    if not rel.isprintable():
        return "holds control characters"
    if "\\" in rel:
        return "uses '\\'; separate folders with '/'"
    if rel.startswith("/") or _DRIVE.match(rel):
        return "is absolute; outputs stay inside the run directory"
    names = rel.split("/")
    for name in names:
        if name == "..":
            return "would leave the run directory ('..')"
        if name in ("", "."):
            return "has an empty or '.' folder name"
        if len(name.encode()) > MAX_NAME_BYTES:
            return f"has a name longer than {MAX_NAME_BYTES} bytes"
    if names[0].casefold() in RUN_FILES:
        return f"would overwrite the run's own {names[0]}"
    return None


def extension_problem(rel: str, output_format: str) -> str | None:
    """Why ``rel``'s extension does not fit ``output_format``, or None (unknown formats pass)."""
    allowed = EXTENSIONS.get(output_format)
    if allowed is None:
        return None
    name = rel.rpartition("/")[2]
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > 0 else ""
    if ext in allowed:
        return None
    if any(ext in exts for exts in EXTENSIONS.values()):
        return f"{rel!r} ends in {ext} but output_format is {output_format}"
    return f"{rel!r} does not end in .{output_format} (output_format is {output_format}); use .{{ext}}"

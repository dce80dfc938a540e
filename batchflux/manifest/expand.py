"""``for_each:`` — one job per combination: a glob of input files crossed with lists of values.

```yaml
for_each:
  input_image: {glob: "images/*.jpg"}   # one job per matching file, sorted by path
  prompt:                               # crossed with each prompt
    - "Paint it as a watercolour"
    - "Make it a neon night scene"
  output_format: jpg                    # a single value applies to every combination
```

Each key takes a single value, a list of values, or (``input_image`` only) ``{glob: PATTERN}``
relative to the manifest (``**`` recurses; hidden files are skipped). Combinations run in key
order, the first key outermost. Ids: with a glob, the file stem (characters outside
``A-Za-z0-9._-`` become ``_``) plus ``-N`` (1-based position) for every list of more than one
value, so ``cat-1``, ``cat-2``; ``cat-2-1`` when crossed with two lists. Without a glob, ids are
derived from the parameters as usual. ``output:`` may give these jobs their own template.
"""

from __future__ import annotations

import glob
import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchflux.manifest.build import MAX_JOBS, Entry
from batchflux.manifest.identity import stem_id
from batchflux.manifest.params import ID_KEY, OUTPUT_KEY, type_value, unknown_key
from batchflux.manifest.problems import Located, StopReading
from batchflux.manifest.schema import ModelSchema
from batchflux.manifest.templates import OutputTemplate
from batchflux.manifest.yaml_source import Text, template_at, text_of, value_of
from batchflux.manifest.yaml_tree import YMap, YNode, YScalar, YSeq

GLOB_KEY = "glob"


@dataclass(frozen=True, slots=True)
class Axis:
    name: str
    values: tuple[tuple[Any, int], ...]  # (typed value, line)
    is_glob: bool = False


def for_each_entries(
    node: YMap, schema: ModelSchema | None, where: Located, base_dir: Path
) -> Iterator[Entry]:
    axes: list[Axis] = []
    output: OutputTemplate | None = None
    known = tuple(schema.params) if schema else None
    for name, (line, value) in node.items.items():
        field = f"for_each.{name}"
        if name == ID_KEY:
            where.at(line, field, "for_each makes ids from file stems (or the parameters); no id here")
        elif name == OUTPUT_KEY:
            text = text_of((line, value), field, where)
            output = template_at(text, known, where, field) if text else None
        elif schema is not None and name not in schema.params:
            where.at(line, field, unknown_key(schema, name, (OUTPUT_KEY,)))
        else:
            axis = _axis(name, line, value, schema, where, base_dir)
            if axis is not None:
                axes.append(axis)
    if not node.items:
        where.at(node.line, "for_each", "names no parameters to expand")
    if not axes:  # nothing, or only keys already reported
        return
    globs = [axis for axis in axes if axis.is_glob]
    if len(globs) > 1:
        where.at(node.line, "for_each", "takes one glob at most")
        return
    count = math.prod(len(axis.values) for axis in axes)
    if count > MAX_JOBS:
        where.at(node.line, "for_each", f"expands to {count} jobs; at most {MAX_JOBS}")
        raise StopReading
    numbered = [i for i, axis in enumerate(axes) if not axis.is_glob and len(axis.values) > 1]
    for n, combination in enumerate(itertools.product(*(range(len(a.values)) for a in axes))):
        values = {axis.name: axis.values[i][0] for axis, i in zip(axes, combination, strict=True)}
        lines = {axis.name: axis.values[i][1] for axis, i in zip(axes, combination, strict=True)}
        job_id = None
        if globs:
            stem = Path(str(values["input_image"])).stem
            job_id = stem_id(stem, "".join(f"-{combination[i] + 1}" for i in numbered))
        label = f"for_each[{job_id if job_id else n}]"
        yield Entry(where.source, node.line, label, values, lines, set(), job_id, output)


def _axis(
    name: str, line: int, node: YNode, schema: ModelSchema | None, where: Located, base_dir: Path
) -> Axis | None:
    field = f"for_each.{name}"
    if isinstance(node, YMap):
        if set(node.items) != {GLOB_KEY}:
            where.at(line, field, "takes a value, a list of values, or {glob: PATTERN}")
            return None
        if name != "input_image":
            where.at(line, field, "only input_image can take a glob")
            return None
        pattern = text_of(node.items[GLOB_KEY], f"{field}.glob", where)
        return _glob_axis(name, pattern, where, base_dir) if pattern else None
    items = node.items if isinstance(node, YSeq) else [node]
    if not items:
        where.at(line, field, "is an empty list")
        return None
    values: list[tuple[Any, int]] = []
    for item in items:
        raw = value_of(item, schema)
        if raw is None:
            where.at(item.line, field, "an empty value in the list")
            continue
        typed, why = (raw, None) if schema is None else type_value(schema, name, raw)
        if why:
            where.at(item.line, field, why)
        else:
            values.append((typed, item.line if isinstance(item, YScalar) else line))
    return Axis(name, tuple(values)) if len(values) == len(items) else None


def _glob_axis(name: str, pattern: Text, where: Located, base_dir: Path) -> Axis | None:
    field = f"for_each.{name}.glob"
    try:
        matches = sorted(glob.glob(os.path.expanduser(pattern.value), root_dir=base_dir, recursive=True))
    except (OSError, ValueError) as exc:
        where.at(pattern.line, field, f"{pattern.value!r}: {exc}")
        return None
    files = [m for m in matches if os.path.isfile(os.path.join(base_dir, m))]
    if not files:
        where.at(pattern.line, field, f"{pattern.value!r} matches no files (relative to {base_dir})")
        return None
    if len(files) > MAX_JOBS:
        where.at(pattern.line, field, f"{pattern.value!r} matches more than {MAX_JOBS} files")
        return None
    return Axis(name, tuple((m, pattern.line) for m in files), is_glob=True)

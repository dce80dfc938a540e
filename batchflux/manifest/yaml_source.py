"""YAML manifests: the top-level keys, ``defaults:`` and the ``jobs:`` list, located.

```yaml
model: flux-kontext-max          # optional, the default
defaults: {output_format: jpg}   # parameters for every job
output: "{id}.{ext}"             # file-name template (optional, this is the default)
jobs:                            # parameter mappings, each with an optional id and output
  - {id: red-cat, prompt: "Make the cat red", input_image: images/cat.jpg}
jobs_csv: more.csv               # rows of a CSV beside this file, with these defaults
for_each: {...}                  # see batchflux.manifest.expand
```
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from batchflux.manifest.build import Entry
from batchflux.manifest.identity import id_problem
from batchflux.manifest.params import ID_KEY, OUTPUT_KEY, NotScalar, type_layer
from batchflux.manifest.problems import Located
from batchflux.manifest.schema import DEFAULT_MODEL, ModelSchema, did_you_mean
from batchflux.manifest.templates import OutputTemplate, TemplateError
from batchflux.manifest.yaml_tree import YMap, YNode, YScalar, YSeq, kind, python_value

TOP_KEYS = ("model", "defaults", "output", "jobs", "jobs_csv", "for_each")
_T = TypeVar("_T", YMap, YSeq)
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True, slots=True)
class Text:
    """A scalar text value from the YAML, with its line."""

    value: str
    line: int


@dataclass(frozen=True, slots=True)
class TopLevel:
    model: Text
    defaults: YMap | None
    output: Text | None
    jobs: YSeq | None
    jobs_csv: Text | None
    for_each: YMap | None
    line: int


def top_level(root: YNode | None, where: Located) -> TopLevel | None:
    """The manifest's sections, each of the right shape; None when the document is not a mapping."""
    if root is None:
        where.at(None, "", "the manifest is empty; it needs jobs:, jobs_csv: or for_each:")
        return None
    if not isinstance(root, YMap):
        where.at(root.line, "", f"a manifest is a mapping of {', '.join(TOP_KEYS)}; this is {kind(root)}")
        return None
    items = root.items
    for key, (line, _) in items.items():
        if key not in TOP_KEYS:
            where.at(
                line, key, f"unknown key{did_you_mean(key, TOP_KEYS)}; a manifest has {', '.join(TOP_KEYS)}"
            )
    model = text_of(items.get("model"), "model", where) or Text(DEFAULT_MODEL, root.line)
    if not _SLUG.fullmatch(model.value):
        where.at(model.line, "model", f"{model.value!r} is not a model slug (letters, digits, '.', '_', '-')")
        model = Text(DEFAULT_MODEL, model.line)
    return TopLevel(
        model=model,
        defaults=_shaped(items.get("defaults"), YMap, "defaults", where),
        output=text_of(items.get("output"), "output", where),
        jobs=_shaped(items.get("jobs"), YSeq, "jobs", where),
        jobs_csv=text_of(items.get("jobs_csv"), "jobs_csv", where),
        for_each=_shaped(items.get("for_each"), YMap, "for_each", where),
        line=root.line,
    )


def text_of(item: tuple[int, YNode] | None, field: str, where: Located) -> Text | None:
    """A non-empty scalar's text; None (reported unless absent or null) otherwise."""
    if item is None:
        return None
    line, node = item
    if isinstance(node, YScalar) and node.is_null:
        return None
    if not isinstance(node, YScalar):
        where.at(line, field, f"must be a single value, not {kind(node)}")
        return None
    if not node.text.strip():
        where.at(line, field, "must not be empty")
        return None
    return Text(node.text, node.line)


def _shaped(item: tuple[int, YNode] | None, shape: type[_T], field: str, where: Located) -> _T | None:
    if item is None:
        return None
    line, node = item
    if isinstance(node, shape):
        return node
    if not (isinstance(node, YScalar) and node.is_null):
        wanted = "a mapping" if shape is YMap else "a list"
        where.at(line, field, f"must be {wanted}, not {kind(node)}")
    return None


def value_of(node: YNode, schema: ModelSchema | None) -> Any:
    """A parameter value as written: text for a schema to type, or YAML-typed data without a schema.

    None means "not given" (a YAML null).
    """
    if isinstance(node, YScalar) and node.is_null:
        return None
    if schema is None:
        return python_value(node)
    return node.text if isinstance(node, YScalar) else NotScalar(kind(node))


def typed_mapping(
    node: YMap, schema: ModelSchema | None, where: Located, prefix: str, skip: tuple[str, ...] = ()
) -> tuple[dict[str, Any], set[str]]:
    """``node``'s parameters typed by the schema, and the names that had a problem (reported)."""
    raw = {}
    for key, (_, value_node) in node.items.items():
        if key in skip:
            continue
        value = value_of(value_node, schema)
        if value is not None:
            raw[key] = value
    bad: set[str] = set()

    def report(name: str, message: str) -> None:
        bad.add(name)
        where.at(node.items[name][0], f"{prefix}.{name}", message)

    return type_layer(schema, raw, report, skip), bad


def job_entries(jobs: YSeq, schema: ModelSchema | None, where: Located) -> Iterator[Entry]:
    """The ``jobs:`` list as entries."""
    known = tuple(schema.params) if schema else None
    for number, node in enumerate(jobs.items):
        label = f"jobs[{number}]"
        if not isinstance(node, YMap):
            where.at(node.line, label, f"a job is a mapping of parameters, not {kind(node)}")
            continue
        values, bad = typed_mapping(node, schema, where, label, (ID_KEY, OUTPUT_KEY))
        lines = {key: line for key, (line, _) in node.items.items()}
        entry = Entry(where.source, node.line, label, values, lines, bad)
        job_id = text_of(node.items.get(ID_KEY), f"{label}.id", where)
        if job_id is not None:
            why = id_problem(job_id.value)
            if why:
                where.at(job_id.line, f"{label}.id", why)
            else:
                entry.job_id = job_id.value
        output = text_of(node.items.get(OUTPUT_KEY), f"{label}.output", where)
        if output is not None:
            entry.output = template_at(output, known, where, f"{label}.output", bad)
        yield entry


def template_at(
    text: Text, known: tuple[str, ...] | None, where: Located, field: str, bad: set[str] | None = None
) -> OutputTemplate | None:
    try:
        return OutputTemplate.parse(text.value, known)
    except TemplateError as exc:
        where.at(text.line, field, str(exc))
        if bad is not None:
            bad.add(OUTPUT_KEY)
        return None

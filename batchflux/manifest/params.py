"""Typing one layer of parameter values (defaults, ``--set``, a job, a CSV row) against the schema.

Values arrive as text (CSV cells, ``--set`` values, YAML scalars as written) and are typed by the
model's schema table, so ``seed: 42``, ``seed: "42"`` and a CSV cell ``42`` mean the same. A YAML
list or mapping where one value belongs arrives as :class:`NotScalar`. For a model without a
schema table, values pass through untouched (YAML typed them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from batchflux.manifest.schema import ModelSchema, check_combination, check_value, coerce_text, did_you_mean

Report = Callable[[str, str], None]  # (field, message)

ID_KEY, OUTPUT_KEY = "id", "output"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tab, newline and carriage return are fine


@dataclass(frozen=True, slots=True)
class NotScalar:
    """A YAML list or mapping given where a single value belongs."""

    kind: str  # "a list", "a mapping"


def unknown_key(schema: ModelSchema, name: str, extra: Iterable[str] = ()) -> str:
    return f"unknown parameter{did_you_mean(name, [*schema.params, *extra])}"


def type_value(schema: ModelSchema | None, name: str, value: Any) -> tuple[Any, str | None]:
    """``(typed value, None)`` or ``(None, why not)``; ``name`` must be in the schema when one is given."""
    if schema is None:
        return value, None
    if isinstance(value, NotScalar):
        return None, f"must be a single value, not {value.kind}"
    param = schema.params[name]
    if isinstance(value, str) and (control := _CONTROL.search(value)):
        return None, f"holds a control character (U+{ord(control.group()):04X})"
    typed, why = coerce_text(param, value) if isinstance(value, str) else (value, None)
    if why is None:
        why = check_value(param, typed)
    return (None, why) if why else (typed, None)


def type_layer(
    schema: ModelSchema | None, values: Mapping[str, Any], report: Report, extra_keys: Iterable[str] = ()
) -> dict[str, Any]:
    """The values that are valid, typed; each bad one reported and left out."""
    typed: dict[str, Any] = {}
    for name, value in values.items():
        if schema is not None and name not in schema.params:
            report(name, unknown_key(schema, name, extra_keys))
            continue
        good, why = type_value(schema, name, value)
        if why:
            report(name, why)
        else:
            typed[name] = good
    return typed


def combination_problems(
    schema: ModelSchema | None, params: Mapping[str, Any], already: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """Problems of the complete parameter set (required, cross-field), skipping fields already reported."""
    if schema is None:
        return []
    skip = set(already)
    found = []
    for name, message in check_combination(schema, params):
        if name in skip:
            continue
        if name == "prompt" and message == "is required":
            message = "is required (no value here and no default)"
        found.append((name, message))
    return found

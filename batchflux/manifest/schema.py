"""Model schemas: each slug's parameters, defaults, allowed values and cross-field rules (pure).

One table per model slug. A slug without a table passes through unchecked (the manifest warns).
The emulator validates submits with the same table, so the client and the "server" agree.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL = "flux-kontext-max"

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: type  # str or int
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    doc: str = ""


@dataclass(frozen=True, slots=True)
class ModelSchema:
    slug: str
    params: Mapping[str, Param]
    price_usd: float  # per image, for estimates and caps
    typical_latency_s: float

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params.values() if p.default is not None}


ASPECT_RATIOS = (
    "match_input_image",
    "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4", "21:9", "9:21", "2:1", "1:2",
)  # fmt: skip
OUTPUT_FORMATS = ("jpg", "png")

FLUX_KONTEXT_MAX = ModelSchema(
    slug="flux-kontext-max",
    price_usd=0.10,
    typical_latency_s=24.0,
    params={
        p.name: p
        for p in (
            Param("prompt", str, required=True, doc="what to change; non-empty"),
            Param("input_image", str, doc="http(s) URL, or a local file the engine uploads"),
            Param("aspect_ratio", str, default="16:9", choices=ASPECT_RATIOS),
            Param("output_format", str, default="png", choices=OUTPUT_FORMATS),
            Param("safety_tolerance", int, default=2, minimum=0, maximum=6, doc="at most 2 with input_image"),
            Param("seed", int, minimum=INT32_MIN, maximum=INT32_MAX, doc="-1 for random"),
        )
    },
)

SCHEMAS: dict[str, ModelSchema] = {FLUX_KONTEXT_MAX.slug: FLUX_KONTEXT_MAX}

# Price for slugs without a schema table, when --price is not given.
FALLBACK_PRICE_USD = 0.10

MAX_SAFETY_WITH_INPUT = 2


def schema_for(slug: str) -> ModelSchema | None:
    return SCHEMAS.get(slug)


def price_for(slug: str, override: float | None = None) -> float:
    if override is not None:
        return override
    schema = SCHEMAS.get(slug)
    return schema.price_usd if schema else FALLBACK_PRICE_USD


def check_value(param: Param, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``param`` (already typed), or None."""
    if param.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{value!r} is not an integer"
        if param.minimum is not None and value < param.minimum:
            return f"{value} is below the minimum {param.minimum}"
        if param.maximum is not None and value > param.maximum:
            return f"{value} is above the maximum {param.maximum}"
        return None
    if not isinstance(value, str):
        return f"{value!r} is not a string"
    if param.required and not value.strip():
        return "must not be empty"
    if param.choices is not None and value not in param.choices:
        return f"{value!r} is not one of {', '.join(param.choices)}"
    return None


def check_params(schema: ModelSchema, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem with a complete parameter set: ``[(field, message)]``, empty when valid.

    Unknown keys are reported here without suggestions; the manifest adds "did you mean".
    """
    problems: list[tuple[str, str]] = []
    for name, value in params.items():
        param = schema.params.get(name)
        if param is None:
            problems.append((name, "unknown parameter"))
            continue
        why = check_value(param, value)
        if why:
            problems.append((name, why))
    problems.extend(check_combination(schema, params))
    return problems


def check_combination(schema: ModelSchema, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The rules across a parameter set whose values are each valid: required ones, cross-field limits."""
    problems = [
        (name, "is required") for name, p in schema.params.items() if p.required and name not in params
    ]
    tolerance = params.get("safety_tolerance")
    if (
        params.get("input_image")
        and isinstance(tolerance, int)
        and not isinstance(tolerance, bool)
        and tolerance > MAX_SAFETY_WITH_INPUT
    ):
        problems.append(
            (
                "safety_tolerance",
                f"{tolerance} is above {MAX_SAFETY_WITH_INPUT}, the most allowed with an input_image",
            )
        )
    return problems


def coerce_text(param: Param, text: str) -> tuple[Any, str | None]:
    """Type a value written as text (a CSV cell, a ``--set`` value, a YAML scalar): ``(value, why_not)``.

    Integers accept an optional sign and decimal digits, surrounding spaces ignored; choice
    values ignore surrounding spaces. The typed value still needs :func:`check_value`.
    """
    if param.type is int:
        stripped = text.strip()
        digits = stripped[1:] if stripped[:1] in "+-" else stripped
        if not digits.isascii() or not digits.isdigit() or len(digits) > 30:
            return None, f"{text!r} is not an integer"
        return int(stripped), None
    if param.choices is not None:
        stripped = text.strip()
        if stripped not in param.choices:
            hint = did_you_mean(stripped, param.choices, cutoff=0.8)
            return None, f"{text!r} is not one of {', '.join(param.choices)}{hint}"
        return param.choices[param.choices.index(stripped)], None  # the table's own (shared) string
    return text, None


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate (ignoring case first), or ``""``."""
    pool = list(candidates)
    folded = {c.lower(): c for c in pool}
    if word.lower() in folded and folded[word.lower()] != word:
        return f" (did you mean {folded[word.lower()]!r}?)"
    close = difflib.get_close_matches(word, pool, n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""

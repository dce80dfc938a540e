"""Jobs given as Python mappings (``batchflux.run_batch([...])``): one entry per mapping, streamed.

Each mapping is a job as a YAML ``jobs:`` item or a CSV row writes it: parameter names plus an
optional ``id`` and ``output``. Values are typed by the model's schema like a manifest's (``42``
and ``"42"`` are the same seed); ``None`` means "use the default". A problem is reported with the
job's position, ``jobs[3].seed: 'abc' is not an integer``, and there is no file or line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from batchflux.manifest.build import Entry
from batchflux.manifest.identity import id_problem
from batchflux.manifest.params import ID_KEY, OUTPUT_KEY, NotScalar, type_layer
from batchflux.manifest.problems import Located
from batchflux.manifest.schema import ModelSchema
from batchflux.manifest.templates import OutputTemplate, TemplateError


def dict_entries(rows: Iterable[object], where: Located, schema: ModelSchema | None) -> Iterator[Entry]:
    """The mappings as entries; problems go to ``where`` (whose source names no file)."""
    known = tuple(schema.params) if schema else None
    for number, row in enumerate(rows):
        label = f"jobs[{number}]"
        if not isinstance(row, Mapping):
            where.at(None, label, f"a job is a mapping of parameters, not {type(row).__name__}")
            continue
        raw: dict[str, Any] = {}
        for key, value in row.items():
            if not isinstance(key, str):
                where.at(None, label, f"parameter names are strings, not {key!r}")
            elif value is not None and key not in (ID_KEY, OUTPUT_KEY):
                raw[key] = _scalar(value) if schema is not None else value
        bad: set[str] = set()

        def report(name: str, message: str, label: str = label, bad: set[str] = bad) -> None:
            bad.add(name)
            where.at(None, f"{label}.{name}", message)

        values = type_layer(schema, raw, report, (ID_KEY, OUTPUT_KEY))
        entry = Entry(where.source, None, label, values, reported=bad)
        job_id = row.get(ID_KEY)
        if job_id is not None:
            why = id_problem(job_id) if isinstance(job_id, str) else f"{job_id!r} is not a string"
            if why:
                where.at(None, f"{label}.id", why)
            else:
                entry.job_id = job_id
        output = row.get(OUTPUT_KEY)
        if output is not None:
            try:
                if not isinstance(output, str):
                    raise TemplateError(f"{output!r} is not a string")
                entry.output = OutputTemplate.parse(output, known)
            except TemplateError as exc:
                where.at(None, f"{label}.output", str(exc))
                bad.add(OUTPUT_KEY)
        yield entry


def _scalar(value: object) -> object:
    """A list or mapping where one value belongs is reported as such, like YAML's."""
    if isinstance(value, Mapping):
        return NotScalar("a mapping")
    if isinstance(value, list | tuple | set | frozenset):
        return NotScalar("a list")
    return value

"""CSV manifests (and a YAML manifest's ``jobs_csv:``): one job per row, streamed.

A header row names the columns: parameter names plus optional ``id`` and ``output``. An empty
(or all-space) cell means "use the default". Quoting, embedded commas and newlines, a UTF-8 BOM
and CRLF line ends are the :mod:`csv` module's; a ``.tsv`` file is tab-separated. Each row is
reported at the line it starts on. Header problems (unknown, unnamed or repeated columns) are
reported once, on the header's line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from batchflux.manifest.build import Entry
from batchflux.manifest.identity import id_problem
from batchflux.manifest.params import ID_KEY, OUTPUT_KEY, type_value
from batchflux.manifest.problems import Located, StopReading
from batchflux.manifest.schema import ModelSchema, did_you_mean
from batchflux.manifest.templates import OutputTemplate, TemplateError
from batchflux.manifest.textfile import text_lines

if TYPE_CHECKING:
    from _csv import Reader


def csv_entries(path: Path, where: Located, schema: ModelSchema | None) -> Iterator[Entry]:
    """The file's rows as entries; problems go to ``where``. Stops (returns) after a fatal one."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(text_lines(path, where), delimiter=delimiter)
    try:
        yield from _rows(reader, where, schema)
    except StopReading:
        return
    except csv.Error as exc:
        hint = " (an unclosed quote?)" if "field limit" in str(exc) else ""
        where.at(reader.line_num, "", f"not readable as CSV: {exc}{hint}; stopped reading")


def _rows(reader: Reader, where: Located, schema: ModelSchema | None) -> Iterator[Entry]:
    line_num = reader.line_num  # lines consumed so far; a row starts on the next one
    header: list[str] | None = None
    columns: list[str | None] = []
    templates: dict[str, OutputTemplate | TemplateError] = {}
    known = tuple(schema.params) if schema else None
    for row in reader:
        start, line_num = line_num + 1, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if header is None:
            header = row
            columns = _columns(row, start, where, schema)
            continue
        if len(row) > len(columns):
            where.at(start, "", f"the row has {len(row)} cells but the header has {len(columns)}")
            continue
        entry = Entry(where.source, start, "", {})
        for name, cell in zip(columns, row, strict=False):
            if name is None or not cell or cell.isspace():
                continue
            if name == ID_KEY:
                why = id_problem(cell)
                if why:
                    where.at(start, ID_KEY, why)
                else:
                    entry.job_id = cell
            elif name == OUTPUT_KEY:
                template = templates.get(cell)
                if template is None:
                    try:
                        template = OutputTemplate.parse(cell, known)
                    except TemplateError as exc:
                        template = exc
                    templates[cell] = template
                if isinstance(template, TemplateError):
                    where.at(start, OUTPUT_KEY, str(template))
                    entry.reported.add(OUTPUT_KEY)
                else:
                    entry.output = template
            else:
                value, why = type_value(schema, name, cell)
                if why:
                    where.at(start, name, why)
                    entry.reported.add(name)
                else:
                    entry.values[name] = value
        yield entry
    if header is None:
        where.at(None, "", "the file is empty; a CSV manifest needs a header row naming its columns")


def _columns(header: list[str], line: int, where: Located, schema: ModelSchema | None) -> list[str | None]:
    """Column names, None for a column to ignore (already reported)."""
    columns: list[str | None] = []
    seen: set[str] = set()
    for number, raw in enumerate(header, 1):
        name = raw.strip()
        if not name:
            where.at(line, "", f"column {number} has no name")
            columns.append(None)
        elif name in seen:
            where.at(line, name, f"column {number} repeats the column {name!r}")
            columns.append(None)
        elif schema is not None and name not in schema.params and name not in (ID_KEY, OUTPUT_KEY):
            hint = did_you_mean(name, (*schema.params, ID_KEY, OUTPUT_KEY))
            where.at(line, name, f"unknown column{hint}")
            columns.append(None)
        else:
            seen.add(name)
            columns.append(name)
    return columns

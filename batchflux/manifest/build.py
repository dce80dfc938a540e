"""From written entries to :class:`~batchflux.manifest.job.Job`s: defaults, inputs, ids, outputs, duplicates.

Every source (a YAML ``jobs:`` item, a CSV row, a ``for_each`` combination) becomes an
:class:`Entry` of typed values; :class:`JobBuilder` applies the defaults, checks the complete
parameter set, the input image, the id and the output path, and catches two jobs sharing an id or
an output file — in one pass, with two dictionaries, nothing quadratic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchflux.manifest import identity
from batchflux.manifest.inputs import BadInput, InputRef, InputResolver
from batchflux.manifest.job import Job
from batchflux.manifest.params import combination_problems
from batchflux.manifest.problems import ProblemLog, StopReading
from batchflux.manifest.schema import ModelSchema
from batchflux.manifest.templates import OutputTemplate, TemplateError, extension_problem, path_problem

MAX_JOBS = 1_000_000
_EXT = re.compile(r"[a-z0-9]{1,5}")


@dataclass(slots=True)
class Entry:
    """One job as written, its own values already typed (bad ones reported and left out)."""

    source: str  # file, as shown in messages ("" for jobs given from Python)
    line: int | None  # None for jobs given from Python: they have a position (the label), no line
    label: str  # field prefix: "jobs[3]", "for_each[cat-1]", "" for a CSV row
    values: dict[str, Any]
    key_lines: Mapping[str, int] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)  # fields with a problem already
    job_id: str | None = None  # explicit (checked) or from a file stem; None: derive
    output: OutputTemplate | None = None  # this job's own template

    def where(self, name: str) -> tuple[int | None, str]:
        return self.key_lines.get(name, self.line), f"{self.label}.{name}" if self.label else name


class JobBuilder:
    """Turns entries into jobs in order, reporting every problem to ``log``."""

    def __init__(
        self,
        *,
        model: str,
        schema: ModelSchema | None,
        defaults: Mapping[str, Any],
        template: OutputTemplate,
        resolver: InputResolver,
        log: ProblemLog,
    ) -> None:
        self.model = model
        self.schema = schema
        self.defaults = dict(defaults)
        self.template = template
        self.resolver = resolver
        self.log = log
        self.jobs: list[Job] = []
        self._ids: dict[str, int] = {}
        self._outputs: dict[str, int] = {}
        self._default_input: InputRef | None = None

    def check_default_input(self, source: str, line: int | None, field_name: str) -> None:
        """Resolve a default ``input_image`` once, so a bad one is reported once, not per job."""
        text = self.defaults.get("input_image")
        if not isinstance(text, str):
            return
        try:
            self._default_input = self.resolver.resolve(text)
        except BadInput as exc:
            self.log.add(source, line, field_name, str(exc))
            del self.defaults["input_image"]

    def add(self, entry: Entry, resolver: InputResolver | None = None) -> Job:
        """The entry's job (built even when it has problems, so later checks still run).

        ``resolver`` resolves the entry's own local inputs (a CSV's rows: relative to the CSV).
        """
        if len(self.jobs) >= MAX_JOBS:
            self.log.add(entry.source, entry.line, "", f"more than {MAX_JOBS} jobs; split the manifest")
            raise StopReading
        params = {**self.defaults, **entry.values} if entry.values else dict(self.defaults)
        for name, message in combination_problems(self.schema, params, entry.reported):
            self._report(entry, name, message)
        ref = self._input(entry, params, resolver)
        sha = ref.local.sha256 if ref is not None and ref.local is not None else None
        canonical = identity.canonical(self.model, params, sha)
        job_id = entry.job_id or identity.derived_id(canonical)
        output = self._output(entry, job_id, params)
        index = len(self.jobs)
        job = Job(
            id=job_id,
            index=index,
            model=self.model,
            params=params,
            output=output,
            fingerprint=identity.fingerprint(canonical, output),
            local_input=ref.local.path if ref is not None and ref.local is not None else None,
            source=entry.label if entry.line is None else f"{entry.source}:{entry.line}",
        )
        self._check_unique(entry, job)
        self.jobs.append(job)
        return job

    def _report(self, entry: Entry, name: str, message: str) -> None:
        line, where = entry.where(name)
        self.log.add(entry.source, line, where, message)

    def _input(
        self, entry: Entry, params: Mapping[str, Any], resolver: InputResolver | None
    ) -> InputRef | None:
        text = params.get("input_image")
        if not isinstance(text, str):
            return None
        if "input_image" not in entry.values and self._default_input is not None:
            return self._default_input
        try:
            return (resolver or self.resolver).resolve(text)
        except BadInput as exc:
            self._report(entry, "input_image", str(exc))
            return None

    def _output(self, entry: Entry, job_id: str, params: Mapping[str, Any]) -> str:
        fmt = params.get("output_format")
        ext = fmt.lower() if isinstance(fmt, str) and _EXT.fullmatch(fmt.lower()) else "png"
        try:
            output = (entry.output or self.template).render(job_id, len(self.jobs), ext, params)
        except TemplateError as exc:
            self._report(entry, "output", str(exc))
            return f"{job_id}.{ext}"
        problem = path_problem(output)
        if problem:
            problem = f"{output!r} {problem}"
        elif self.schema is not None:
            problem = extension_problem(output, ext)
        if problem:
            self._report(entry, "output", problem)
        return output

    def _check_unique(self, entry: Entry, job: Job) -> None:
        first = self._ids.setdefault(job.id, job.index)
        if first != job.index:
            other = self.jobs[first]
            if entry.job_id is None:
                message = (
                    f"same parameters as the job at {other.source} (derived id {job.id!r}); "
                    "give each an explicit id (or another seed) to run both"
                )
            else:
                message = f"duplicate id {job.id!r} (first used at {other.source})"
            self._report(entry, "id", message)
            return
        key = job.output.casefold()
        first = self._outputs.setdefault(key, job.index)
        if first != job.index:
            other = self.jobs[first]
            case = "" if other.output == job.output else " (the names differ only in case)"
            self._report(
                entry, "output", f"{job.output!r} is also written by the job at {other.source}{case}"
            )

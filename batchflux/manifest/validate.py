"""``load_manifest``: a YAML or CSV manifest → validated jobs, or every problem at once.

Order of the jobs: a YAML's ``jobs:`` list, then its ``jobs_csv:`` rows, then its ``for_each:``
combinations. Parameter precedence, lowest first: the model's defaults, the YAML ``defaults:``,
the command line's ``--set`` values, the job's own values. ``--set output=TEMPLATE`` replaces the
manifest's output template.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchflux.manifest.build import Entry, JobBuilder
from batchflux.manifest.csv_source import csv_entries
from batchflux.manifest.dict_source import dict_entries
from batchflux.manifest.expand import for_each_entries
from batchflux.manifest.inputs import InputResolver
from batchflux.manifest.job import Job
from batchflux.manifest.params import OUTPUT_KEY, type_layer
from batchflux.manifest.problems import Located, ProblemLog, StopReading
from batchflux.manifest.schema import DEFAULT_MODEL, ModelSchema, schema_for
from batchflux.manifest.templates import DEFAULT_TEMPLATE, OutputTemplate, TemplateError
from batchflux.manifest.textfile import Unreadable, check_regular_file, read_capped
from batchflux.manifest.yaml_source import Text, TopLevel, job_entries, template_at, top_level, typed_mapping
from batchflux.manifest.yaml_tree import YMap, compose

YAML_SUFFIXES = (".yaml", ".yml")
CSV_SUFFIXES = (".csv", ".tsv")
SET_SOURCE = "--set"


@dataclass(frozen=True, slots=True)
class Manifest:
    path: Path  # the manifest file, resolved
    model: str  # slug
    jobs: tuple[Job, ...]  # in manifest order; Job.index is the 0-based position
    warnings: tuple[str, ...]

    @property
    def stem(self) -> str:
        """The file's stem: the default run directory is ``out/<stem>/``."""
        return self.path.stem


def load_manifest(path: Path, overrides: Mapping[str, str] | None = None) -> Manifest:
    """Read and validate a manifest; raises :class:`ManifestError` listing every problem."""
    log = ProblemLog()
    loader = _Loader(Path(path), log)
    try:
        manifest = loader.load(overrides or {})
    except StopReading:
        manifest = None
    if log or manifest is None:
        raise log.error()
    return manifest


def load_jobs(
    jobs: Iterable[object],
    *,
    base_dir: Path | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Manifest:
    """Validate jobs given as mappings exactly as a CSV manifest's rows are (model flux-kontext-max,
    ``overrides`` as ``--set``); local ``input_image`` paths are relative to ``base_dir`` (default:
    the current directory). Raises :class:`ManifestError` listing every problem, each named by the
    job's position (``jobs[3].seed``). The manifest's ``path`` is ``base_dir/jobs``: no such file."""
    log = ProblemLog()
    loader = _Loader((base_dir or Path.cwd()).resolve() / "jobs", log)
    loader.where = Located(log, "")
    try:
        manifest = loader.from_dicts(jobs, overrides or {})
    except StopReading:
        manifest = None
    if log or manifest is None:
        raise log.error()
    return manifest


class _Loader:
    def __init__(self, path: Path, log: ProblemLog) -> None:
        self.path = path
        self.log = log
        self.where = Located(log, str(path))
        self.resolved = path.resolve()
        self.warnings: list[str] = []

    def load(self, overrides: Mapping[str, str]) -> Manifest | None:
        try:
            check_regular_file(self.path)
        except Unreadable as exc:
            self.where.at(None, "", str(exc))
            return None
        suffix = self.path.suffix.lower()
        if suffix not in YAML_SUFFIXES + CSV_SUFFIXES:
            kinds = ", ".join(YAML_SUFFIXES + CSV_SUFFIXES)
            self.where.at(None, "", f"unknown manifest type {suffix or '(no suffix)'!r}; use {kinds}")
            return None
        if suffix in CSV_SUFFIXES:
            return self._csv(overrides)
        try:
            data = read_capped(self.path)
        except Unreadable as exc:
            self.where.at(None, "", str(exc))
            return None
        top = top_level(compose(data, self.where), self.where)
        return self._yaml(top, overrides) if top else None

    def _yaml(self, top: TopLevel, overrides: Mapping[str, str]) -> Manifest | None:
        model, schema = top.model.value, self._schema(top.model.value)
        defaults: dict[str, Any] = dict(schema.defaults()) if schema else {}
        if top.defaults is not None:
            written, _ = typed_mapping(top.defaults, schema, self.where, "defaults", (OUTPUT_KEY,))
            defaults.update(written)
            if OUTPUT_KEY in top.defaults.items:
                line = top.defaults.items[OUTPUT_KEY][0]
                self.where.at(line, "defaults.output", "the output template is a top-level key (output:)")
        known = tuple(schema.params) if schema else None
        template = template_at(top.output, known, self.where, "output") if top.output else None
        builder = self._builder(model, schema, defaults, overrides, template, top.defaults)
        if top.jobs is not None:
            self._add_all(builder, job_entries(top.jobs, schema, self.where))
        if top.jobs_csv is not None:
            self._jobs_csv(builder, top.jobs_csv, schema)
        if top.for_each is not None:
            entries = for_each_entries(top.for_each, schema, self.where, self.resolved.parent)
            self._add_all(builder, entries)
        if top.jobs is None and top.jobs_csv is None and top.for_each is None:
            self.where.at(top.line, "", "no jobs: add jobs:, jobs_csv: or for_each:")
        return self._finish(model, builder)

    def _jobs_csv(self, builder: JobBuilder, name: Text, schema: ModelSchema | None) -> None:
        csv_path = self.resolved.parent / name.value
        why = None if csv_path.suffix.lower() in CSV_SUFFIXES else "is not a .csv or .tsv file"
        try:
            check_regular_file(csv_path)
        except Unreadable as exc:
            why = why or str(exc)
        if why:
            self.where.at(name.line, "jobs_csv", f"{name.value!r}: {why}")
            return
        shown = os.path.normpath(os.path.join(os.path.dirname(self.path), name.value))
        where = Located(self.log, shown)
        self._add_all(builder, csv_entries(csv_path, where, schema), InputResolver(csv_path.parent), where)

    def _csv(self, overrides: Mapping[str, str]) -> Manifest | None:
        schema = self._schema(DEFAULT_MODEL)
        defaults: dict[str, Any] = dict(schema.defaults()) if schema else {}
        builder = self._builder(DEFAULT_MODEL, schema, defaults, overrides, None, None)
        self._add_all(builder, csv_entries(self.path, self.where, schema))
        return self._finish(DEFAULT_MODEL, builder)

    def from_dicts(self, rows: Iterable[object], overrides: Mapping[str, str]) -> Manifest | None:
        schema = self._schema(DEFAULT_MODEL)
        defaults: dict[str, Any] = dict(schema.defaults()) if schema else {}
        builder = self._builder(DEFAULT_MODEL, schema, defaults, overrides, None, None)
        self._add_all(builder, dict_entries(rows, self.where, schema))
        return self._finish(DEFAULT_MODEL, builder)

    def _schema(self, model: str) -> ModelSchema | None:
        schema = schema_for(model)
        if schema is None:
            self.warnings.append(f"model {model!r} has no schema table; parameters are not checked")
        return schema

    def _builder(
        self,
        model: str,
        schema: ModelSchema | None,
        defaults: dict[str, Any],
        overrides: Mapping[str, str],
        template: OutputTemplate | None,
        defaults_node: YMap | None,
    ) -> JobBuilder:
        sets = Located(self.log, SET_SOURCE)
        values = {k: v for k, v in overrides.items() if k != OUTPUT_KEY}
        defaults.update(type_layer(schema, values, lambda name, msg: sets.at(None, name, msg), (OUTPUT_KEY,)))
        if OUTPUT_KEY in overrides:
            try:
                template = OutputTemplate.parse(
                    overrides[OUTPUT_KEY], tuple(schema.params) if schema else None
                )
            except TemplateError as exc:
                sets.at(None, OUTPUT_KEY, str(exc))
        builder = JobBuilder(
            model=model,
            schema=schema,
            defaults=defaults,
            template=template or OutputTemplate(DEFAULT_TEMPLATE, ()),
            resolver=InputResolver(self.resolved.parent),
            log=self.log,
        )
        if "input_image" in values:
            builder.check_default_input(SET_SOURCE, None, "input_image")
        elif defaults_node is not None and "input_image" in defaults_node.items:
            builder.check_default_input(
                str(self.path), defaults_node.items["input_image"][0], "defaults.input_image"
            )
        return builder

    def _add_all(
        self,
        builder: JobBuilder,
        entries: Iterable[Entry],
        resolver: InputResolver | None = None,
        where: Located | None = None,
    ) -> None:
        try:
            for entry in entries:
                builder.add(entry, resolver)
        except Unreadable as exc:
            (where or self.where).at(None, "", str(exc))

    def _finish(self, model: str, builder: JobBuilder) -> Manifest | None:
        jobs = tuple(builder.jobs)
        if not jobs and not self.log:
            self.where.at(None, "", "no jobs: the manifest lists none")
        blind = sum(
            1
            for j in jobs
            if j.params.get("aspect_ratio") == "match_input_image" and not j.params.get("input_image")
        )
        if blind:
            self.warnings.append(
                f"{blind} job(s) ask for aspect_ratio match_input_image without an input_image"
            )
        return Manifest(self.resolved, model, jobs, tuple(self.warnings))

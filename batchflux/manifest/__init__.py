"""Manifests: YAML or CSV files of image edits → validated :class:`~batchflux.manifest.job.Job`s.

Everything that can be known before spending money is checked, and every problem is reported
at once with its file, line and field (:class:`ManifestError`). Modules, in data-flow order:

- :mod:`.textfile` bounded reading; :mod:`.yaml_tree` safe, located YAML; :mod:`.yaml_source`,
  :mod:`.csv_source`, :mod:`.expand` (``for_each``) turn files into entries, :mod:`.dict_source`
  Python mappings;
- :mod:`.params` types values by the model's schema; :mod:`.inputs` checks input images;
  :mod:`.identity` ids and fingerprints; :mod:`.templates` output paths;
- :mod:`.build` entries → jobs; :mod:`.validate` ``load_manifest``, ``load_jobs``; :mod:`.summary`
  counts and cost; :mod:`.write` jobs back out as a manifest file.

May import nothing else of batchflux: it is the floor (the model schema lives here too).
"""

from batchflux.manifest.problems import ManifestError, Problem
from batchflux.manifest.validate import Manifest, load_jobs, load_manifest

__all__ = ["Manifest", "ManifestError", "Problem", "load_jobs", "load_manifest"]

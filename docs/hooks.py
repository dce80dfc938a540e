"""MkDocs hook: the package's docstrings cite objects with Sphinx roles (:func:`run_batch`,
:class:`~batchflux.manifest.ManifestError`); on the Python API page they read as code, the role
dropped and, for ``~``, the path shortened to the last name, as Sphinx shows them."""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):<code>(~?)([^<]*)</code>")


def _plain(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if short else target}</code>"


def on_page_content(html: str, **_: Any) -> str:
    return _ROLE.sub(_plain, html)

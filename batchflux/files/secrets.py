"""No secret in what batchflux writes: the redactor that the log files and the report share.

(The API client scrubs its own error messages of the key it holds, at the HTTP boundary.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

REDACTED: Final = "SG_***"


class Redactor:
    """Replaces every secret string with :data:`REDACTED`. Empty secrets are ignored."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        unique = {s for s in secrets if s}
        # JSON output escapes some characters: redact the escaped spelling as well.
        unique |= {json.dumps(s, ensure_ascii=False)[1:-1] for s in unique}
        unique |= {json.dumps(s)[1:-1] for s in unique}
        self._secrets = sorted(unique, key=len, reverse=True)  # longest first: no partial leftovers

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

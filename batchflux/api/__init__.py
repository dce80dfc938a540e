"""The API boundary: :class:`ApiClient`, its values, and the typed errors everything maps to.

See :mod:`batchflux.api.errors` for the exception tree and what each error asks of the engine.

May import nothing else of batchflux: every HTTP and transport failure stops here, and the
retry policy (:mod:`.policy`) is pure decisions over its errors.
"""

from batchflux.api.client import DEFAULT_BASE_URL, DEFAULT_HISTORY_URL, DEFAULT_UPLOAD_URL, ApiClient
from batchflux.api.errors import (
    Ambiguous,
    ApiError,
    DownloadError,
    Expired,
    Fatal,
    HistoryUnavailable,
    JobFailed,
    OutOfCredits,
    RateLimited,
    Transient,
)
from batchflux.api.history import HistoryPage, HistoryQuery, HistoryRow
from batchflux.api.media import MediaBody, MediaGet
from batchflux.api.replies import JobResult, JobStatus, Submission

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_HISTORY_URL",
    "DEFAULT_UPLOAD_URL",
    "Ambiguous",
    "ApiClient",
    "ApiError",
    "DownloadError",
    "Expired",
    "Fatal",
    "HistoryPage",
    "HistoryQuery",
    "HistoryRow",
    "HistoryUnavailable",
    "JobFailed",
    "JobResult",
    "JobStatus",
    "MediaBody",
    "MediaGet",
    "OutOfCredits",
    "RateLimited",
    "Submission",
    "Transient",
]

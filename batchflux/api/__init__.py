"""The API boundary: :class:`ApiClient`, its values, and the typed errors everything maps to.

See :mod:`batchflux.api.errors` for the exception tree and what each error asks of the engine.
"""

from batchflux.api.client import DEFAULT_BASE_URL, DEFAULT_UPLOAD_URL, ApiClient
from batchflux.api.errors import (
    Ambiguous,
    ApiError,
    DownloadError,
    Expired,
    Fatal,
    JobFailed,
    OutOfCredits,
    RateLimited,
    Transient,
)
from batchflux.api.replies import JobResult, JobStatus, Submission

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_UPLOAD_URL",
    "Ambiguous",
    "ApiClient",
    "ApiError",
    "DownloadError",
    "Expired",
    "Fatal",
    "JobFailed",
    "JobResult",
    "JobStatus",
    "OutOfCredits",
    "RateLimited",
    "Submission",
    "Transient",
]

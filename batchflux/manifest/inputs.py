"""Input images: an http(s) URL passes through; anything else is a local image file, checked.

A local file must exist, be a regular file of at most :data:`MAX_INPUT_BYTES`, and be a JPEG, PNG,
WebP or GIF that Pillow identifies from its header (no full decode). Its content sha256 stands in
for its path in job ids and fingerprints. Both the probe and the hash are cached by the file's
identity (device, inode, size, mtime), so a 100 000-row manifest that reuses a handful of images
reads each image once, and the engine's later :func:`file_sha256` calls cost a ``stat``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from batchflux.manifest.textfile import Unreadable, check_regular_file

MAX_INPUT_BYTES = 64 * 1024 * 1024
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")  # what FLUX.1 Kontext takes as input_image
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # two letters at least: "C:" is a drive
_CHUNK = 1024 * 1024
BUCKET_SCHEMES = ("s3", "gs", "az")  # an object in a bucket: checked and signed by the run
_BUCKET_URL = re.compile(r"^(?:s3|gs|az)://[^/\s]+/[^\s]*[^/\s]\Z", re.IGNORECASE)
_URL = re.compile(  # scheme, optional user info, host (or [IPv6]), optional port, then no spaces or controls
    r"https?://(?:[^/?#@\s\x00-\x1f\x7f]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^:/?#\[\]@\s\x00-\x1f\x7f]+)"
    r"(?::(?P<port>\d{1,5}))?(?:[/?#][^\s\x00-\x1f\x7f]*)?\Z",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class LocalImage:
    path: Path  # absolute
    sha256: str
    format: str  # Pillow's name: JPEG, PNG, WEBP, GIF
    width: int
    height: int
    size: int  # bytes


@dataclass(frozen=True, slots=True)
class InputRef:
    """A checked ``input_image``: a URL (``local is None``) or a local image."""

    text: str  # as written in the manifest
    local: LocalImage | None = None


class BadInput(Exception):
    """Why an ``input_image`` value is unusable (the message is for the user)."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file's content, cached while the file is unchanged (same inode, size, mtime)."""
    info = os.stat(path)
    return _sha256(os.fspath(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _sha256(path: str, dev: int, ino: int, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def probe_image(path: Path) -> LocalImage:
    """Check that ``path`` is an acceptable image file; raises :class:`BadInput` saying why not."""
    try:
        info = check_regular_file(path, "an image file")
    except Unreadable as exc:
        raise BadInput(str(exc)) from None
    if info.st_size > MAX_INPUT_BYTES:
        raise BadInput(f"is {info.st_size:,} bytes; the most accepted is {MAX_INPUT_BYTES:,}")
    return _probe(os.fspath(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _probe(path: str, dev: int, ino: int, size: int, mtime_ns: int) -> LocalImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # reads the header only
                fmt, (width, height) = image.format or "", image.size
    except OSError as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise BadInput("is not an image Pillow can identify") from None
        if exc.errno is None:  # Pillow's own complaint about the bytes, not the file system's
            raise BadInput(f"is not a readable image ({exc})") from None
        raise BadInput(f"cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # Pillow's plugins raise assorted errors on corrupt headers
        raise BadInput(f"is not a readable image ({type(exc).__name__})") from None
    if fmt not in ACCEPTED_FORMATS:
        raise BadInput(f"is a {fmt or 'unknown'} image; use JPEG, PNG, WebP or GIF")
    try:
        sha = _sha256(path, dev, ino, size, mtime_ns)
    except OSError as exc:
        raise BadInput(f"cannot read: {exc.strerror or exc}") from None
    return LocalImage(Path(path), sha, fmt, width, height, size)


class InputResolver:
    """Checks ``input_image`` strings for one manifest directory; remembers every answer."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self._seen: dict[str, InputRef | BadInput] = {}

    def resolve(self, text: str) -> InputRef:
        """The checked input; raises :class:`BadInput`."""
        known = self._seen.get(text)
        if known is None:
            try:
                known = self._resolve(text)
            except BadInput as exc:
                known = exc
            self._seen[text] = known
        if isinstance(known, BadInput):
            raise known
        return known

    def local_files(self) -> int:
        return sum(1 for ref in self._seen.values() if isinstance(ref, InputRef) and ref.local)

    def _resolve(self, text: str) -> InputRef:
        if not text.strip():
            raise BadInput("is empty")
        scheme = _SCHEME.match(text)
        if scheme:
            name = scheme.group(1).lower()
            if name in ("http", "https"):
                if not _good_url(text):
                    raise BadInput(f"{text!r} is not a valid URL")
                return InputRef(text, None)
            if name in BUCKET_SCHEMES:
                if not _BUCKET_URL.match(text):
                    raise BadInput(f"{text!r} is not an object's URL ({name}://BUCKET/KEY)")
                return InputRef(text, None)  # sent as a signed URL (or uploaded) at submit time
            if name == "file":
                raise BadInput(f"{text!r}: file:// URLs are not accepted; write the path itself")
            raise BadInput(
                f"{text!r}: only http(s), s3, gs or az URLs or local file paths are accepted, not {name}:"
            )
        path = Path(os.path.expanduser(text))
        full = path if path.is_absolute() else self.base_dir / path
        try:
            image = probe_image(Path(os.path.abspath(full)))
        except BadInput as exc:
            raise BadInput(f"{text!r}: {exc}") from None
        return InputRef(text, image)


def _good_url(text: str) -> bool:
    match = _URL.match(text)
    return match is not None and int(match.group("port") or 0) <= 65535

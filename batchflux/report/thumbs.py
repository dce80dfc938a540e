"""Thumbnails for the report: small JPEGs in ``OUT/thumbs/``, made once and reused.

A thumbnail's name is a hash of its source's resolved path, size and modification time (and
the thumbnail size), so an unchanged image is never decoded twice across reports, and a
replaced one gets a fresh thumbnail. Unreadable images get none; the card still links the file.

An image that leaves the local disk (a bucket run directory uploads it from its spool, then
removes it) gets its thumbnail just before (:func:`ensure_stored_thumb`), named by its content
(:func:`stored_thumb_name`: the ledger's sha256 and size), so that a report made later, anywhere,
finds it from the ledger alone.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

THUMB_SIZE = 320  # long side, px: sharp at the card's size on a 2x screen
THUMB_QUALITY = 80
ORIENTATION_TAG = 0x0112  # EXIF: how the camera was held
MAX_PIXELS = 80_000_000  # refuse to decode anything larger (a decompression bomb, or a mistake)


def thumb_name(src: Path, size: int = THUMB_SIZE) -> str | None:
    """The thumbnail file name for ``src`` as it is now, or None when it is not a readable file."""
    try:
        st = src.stat()
        resolved = src.resolve()
    except (OSError, RuntimeError):
        return None
    if not src.is_file():
        return None
    key = f"{resolved}\0{st.st_size}\0{st.st_mtime_ns}\0{size}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(key).hexdigest()[:32] + ".jpg"


def ensure_thumb(src: Path, thumb_dir: Path, size: int = THUMB_SIZE) -> Path | None:
    """The thumbnail of ``src`` in ``thumb_dir``, made now only if it does not exist yet."""
    name = thumb_name(src, size)
    if name is None:
        return None
    return _made(src, thumb_dir / name, size)


def _made(src: Path, target: Path, size: int) -> Path | None:
    """``target``, made from ``src`` unless it exists; None when ``src`` is not an image Pillow reads."""
    if target.exists():
        return target
    try:
        _make(src, target, size)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError):
        return None
    return target


def stored_thumb_name(sha256: str, size_bytes: int, size: int = THUMB_SIZE) -> str:
    """The thumbnail file name for an image known by its content, as the ledger records it."""
    key = f"sha256:{sha256}\0{size_bytes}\0{size}".encode()
    return hashlib.sha256(key).hexdigest()[:32] + ".jpg"


def ensure_stored_thumb(src: Path, data: bytes, thumb_dir: Path, size: int = THUMB_SIZE) -> Path | None:
    """The content-named thumbnail of ``src`` (whose bytes are ``data``) in ``thumb_dir``, made now
    only if it does not exist yet; None when the file is not an image Pillow can read."""
    return _made(src, thumb_dir / stored_thumb_name(hashlib.sha256(data).hexdigest(), len(data), size), size)


def ensure_thumbs(
    jobs: Iterable[tuple[Path, Path]], *, size: int = THUMB_SIZE, workers: int | None = None
) -> dict[tuple[Path, Path], Path | None]:
    """Thumbnails for many ``(source, thumb_dir)`` pairs, each distinct pair once; Pillow
    releases the GIL while decoding and resizing, so a few threads share the work."""
    unique = list(dict.fromkeys(jobs))
    if not unique:
        return {}
    workers = workers or min(4, os.cpu_count() or 1)
    if workers <= 1 or len(unique) < 8:
        return {pair: ensure_thumb(*pair, size) for pair in unique}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbs") as pool:
        made = pool.map(lambda pair: ensure_thumb(pair[0], pair[1], size), unique)
        return dict(zip(unique, made, strict=True))


def _make(src: Path, target: Path, size: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(src) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(f"{im.width}x{im.height} is too large to preview")
            im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, several times faster
            orientation = im.getexif().get(ORIENTATION_TAG, 1)
            # Shrink first, then turn: transposing the thumbnail is cheap, the full image is not.
            im.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=1.5)
            img = _flatten(ImageOps.exif_transpose(im) if orientation != 1 else im)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                img.save(tmp, "JPEG", quality=THUMB_QUALITY, optimize=True)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)


def _flatten(img: Image.Image) -> Image.Image:
    """RGB for JPEG: transparency over white, palettes and greyscale converted."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img if img.mode == "RGB" else img.convert("RGB")

"""Output images: real PNG/JPEG bytes of the requested aspect ratio, made with Pillow (pure).

With a readable input image the output is that image fitted to the target ratio, tinted, with the
prompt's first words drawn on it; without one, a generated pattern. Everything derives from a digest
of (parameters, emulator seed, input bytes), so equal inputs give byte-identical outputs.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

DEFAULT_RATIO = (16, 9)
_RATIO = re.compile(r"^\s*(\d{1,4})\s*:\s*(\d{1,4})\s*$")
_INPUT_MAX_SIDE = 512  # inputs are reduced to this before use; outputs are small anyway


@dataclass(frozen=True, slots=True)
class InputImage:
    """A decoded, reduced input image and the size the original had (for match_input_image)."""

    image: Image.Image
    size: tuple[int, int]


@dataclass(frozen=True, slots=True)
class RenderSpec:
    size: tuple[int, int]
    ext: str  # "png" or "jpg"
    label: str  # drawn on the image
    digest: bytes  # at least 16 bytes; picks colours and pattern


def output_ext(output_format: Any) -> str:
    """The file extension for a requested ``output_format`` (png unless jpg/jpeg is asked for)."""
    return "jpg" if isinstance(output_format, str) and output_format.lower() in ("jpg", "jpeg") else "png"


def parse_ratio(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, str):
        return None
    match = _RATIO.match(value)
    if not match:
        return None
    w, h = int(match.group(1)), int(match.group(2))
    return (w, h) if w > 0 and h > 0 else None


def output_size(aspect_ratio: Any, long_side: int, input_size: tuple[int, int] | None) -> tuple[int, int]:
    """Pixel size for a requested ratio; ``match_input_image`` follows the input (16:9 without one)."""
    ratio = input_size if aspect_ratio == "match_input_image" else parse_ratio(aspect_ratio)
    w, h = ratio if ratio and ratio[0] > 0 and ratio[1] > 0 else DEFAULT_RATIO
    if w >= h:
        return long_side, max(1, round(long_side * h / w))
    return max(1, round(long_side * w / h)), long_side


def label_for(prompt: Any, words: int = 5, max_chars: int = 40) -> str:
    """The prompt's first words, printable ASCII only (the default font's safe range)."""
    text = " ".join(str(prompt or "").split()[:words])
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "~"


def load_input(data: bytes) -> InputImage | None:
    """Decode untrusted image bytes, reduced for speed; None when they are not a readable image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            size = img.size
            img.draft("RGB", (_INPUT_MAX_SIDE, _INPUT_MAX_SIDE))  # JPEG: decode at a reduced scale
            rgb = img.convert("RGB")
        rgb.thumbnail((_INPUT_MAX_SIDE, _INPUT_MAX_SIDE))
        return InputImage(rgb, size)
    except Exception:  # any decoder failure (truncated data, bombs, odd modes) means "not readable"
        return None


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _colour(digest: bytes, at: int) -> tuple[int, int, int]:
    return digest[at % len(digest)], digest[(at + 1) % len(digest)], digest[(at + 2) % len(digest)]


def _pattern(size: tuple[int, int], digest: bytes) -> Image.Image:
    gradient = Image.linear_gradient("L").rotate(digest[0] % 360).resize(size)
    img = ImageOps.colorize(gradient, black=_colour(digest, 1), white=_colour(digest, 4)).convert("RGB")
    draw = ImageDraw.Draw(img)
    w, h = size
    for i in range(4):
        x, y = digest[7 + i] * w // 256, digest[11 + i] * h // 256
        r = max(2, (digest[3 + i] % 32 + 8) * min(w, h) // 128)
        draw.ellipse((x - r, y - r, x + r, y + r), outline=_colour(digest, 9 + i), width=max(1, r // 6))
    return img


def render(spec: RenderSpec, source: InputImage | None) -> bytes:
    """The encoded output image (CPU work: call it off the event loop)."""
    base = ImageOps.fit(source.image, spec.size) if source else _pattern(spec.size, spec.digest)
    tint = Image.new("RGB", spec.size, _colour(spec.digest, 13))
    img = Image.blend(base.convert("RGB"), tint, 0.3)
    if spec.label:
        font = _font(max(8, min(spec.size) // 12))
        draw = ImageDraw.Draw(img)
        # Bottom left, where galleries rarely put their own badges.
        _, top, _, bottom = draw.textbbox((0, 0), spec.label, font=font)
        origin = (4, spec.size[1] - (bottom - top) - 6 - top)
        left, top, right, bottom = draw.textbbox(origin, spec.label, font=font)
        draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=(0, 0, 0))
        draw.text(origin, spec.label, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    if spec.ext == "jpg":
        img.save(out, format="JPEG", quality=85)
    else:
        img.save(out, format="PNG", compress_level=1)
    return out.getvalue()

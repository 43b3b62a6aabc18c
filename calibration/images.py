"""Decoding images into RGB arrays, and the embedded set of real photographs."""

from __future__ import annotations

import io
import pathlib

import numpy as np

EMBEDDED_DIR = pathlib.Path(__file__).with_name("images")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def decode(data: bytes | str | pathlib.Path) -> np.ndarray:
    """An encoded image (bytes or a path) as an HxWx3 uint8 RGB array.

    EXIF orientation is applied (phone photos are stored sideways); grayscale, palette and RGBA
    images become RGB (alpha is composited on black, as a decoder for a camera would see it);
    16-bit grayscale is scaled to 8 bits (PIL's own conversion clips it at 255).
    Raises ValueError when the data is not a decodable image, an image too large to decode
    (PIL's decompression-bomb limit), or 32-bit pixels whose range is unknown.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            png = image.format == "PNG"  # a PNG's "I" pixels are 16-bit (older PIL)
            image = ImageOps.exif_transpose(image)
            if image.mode.startswith("I;16") or (image.mode == "I" and png):
                wide = np.asarray(image).astype(np.float64)  # 0-65535
                image = Image.fromarray(np.round(wide / 257).clip(0, 255).astype(np.uint8))
            elif image.mode in ("I", "F"):
                raise ValueError(f"{'32-bit integer' if image.mode == 'I' else 'floating-point'} "
                                 "pixels have no known range; save the image with 8 or 16 bits")
            if image.mode in ("RGBA", "LA", "PA") or (
                image.mode == "P" and "transparency" in image.info
            ):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (0, 0, 0, 255))
                image = Image.alpha_composite(background, image)
            return np.asarray(image.convert("RGB"))
    except Image.DecompressionBombError as err:  # not an OSError: a header claiming ~1e9 pixels
        raise ValueError(f"not decoded, too large: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"not a decodable image: {err}") from None


def embedded_paths() -> list[pathlib.Path]:
    """The bundled photographs (see images/LICENSES.md), in a fixed order."""
    return sorted(p for p in EMBEDDED_DIR.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def embedded_images() -> list[np.ndarray]:
    return [decode(p) for p in embedded_paths()]

"""Detections drawn on their image, as PNG: what a person checks before trusting a mAP.

A converted detector that lost its boxes' offsets or its class order still scores something;
a picture of float and int8 detections side by side shows at a glance what went wrong. Only
PIL and numpy are used, so the drawings need nothing beyond the package's own dependencies.

Boxes follow the package's convention (normalized [ymin, xmin, ymax, xmax], 0-based classes).
Files are written whole or not at all (tfmobile_core.atomic): the PNG is encoded in memory
first, so a drawing that raises leaves no file, and a failed write leaves the old one.
"""

from __future__ import annotations

import io
import math
import os
import pathlib
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tfmobile_core import atomic

# Distinct, saturated colours, indexed by class id (modulo their number). White and near-white
# are left out: ground truth is drawn white.
PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (128, 0, 0), (170, 255, 195),
    (128, 128, 0), (255, 215, 180), (0, 0, 128),
)
TRUTH_COLORS = ((255, 255, 255), (0, 0, 0))  # dashes alternate, visible on any background
# Small network inputs (224, 320 px) are scaled up to about this size so labels are legible.
DISPLAY_SIZE = 640
MAX_SCALE = 8


def class_color(class_id: int) -> tuple[int, int, int]:
    """The RGB colour boxes of class_id are drawn in: the same class has the same colour in
    every drawing, so float and int8 tiles can be compared box by box."""
    return PALETTE[int(class_id) % len(PALETTE)]


def display_scale(height: int, width: int) -> int:
    """The whole factor an image is enlarged by: a 320 px image twice, a 224 px one three
    times, anything of DISPLAY_SIZE or more not at all. Whole, so pixels stay square."""
    return int(min(MAX_SCALE, max(1, round(DISPLAY_SIZE / max(height, width, 1)))))


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled scalable font
    except (TypeError, ImportError, OSError):  # an old Pillow or one without FreeType
        return ImageFont.load_default()


def _rgb(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as opened:
            return opened.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0..255), got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        return Image.fromarray(array).convert("RGB")
    raise ValueError(f"images must be [H, W], [H, W, 3] or [H, W, 4], got shape {array.shape}")


def _pixel_boxes(boxes, width: int, height: int) -> np.ndarray:
    """Normalized yxyx to whole-pixel [x0, y0, x1, y1] inside the image (PIL includes x1, y1)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0 = np.clip(np.round(b[:, 1] * width), 0, width - 1)
    y0 = np.clip(np.round(b[:, 0] * height), 0, height - 1)
    x1 = np.clip(np.round(b[:, 3] * width), 0, width - 1)
    y1 = np.clip(np.round(b[:, 2] * height), 0, height - 1)
    return np.stack([x0, y0, np.maximum(x1, x0), np.maximum(y1, y0)], axis=1).astype(int)


def _text_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    luma = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


def _label(draw: ImageDraw.ImageDraw, text: str, x: int, y: int, above: bool, fill, font,
           size: tuple[int, int]) -> None:
    """A filled tag with text, above the point (or below it where the image's edge is)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(1, (bottom - top) // 5)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    y0 = y - h if above and y - h >= 0 else y
    y0 = min(y0, max(size[1] - h, 0))
    x0 = min(x, max(size[0] - w, 0))
    draw.rectangle([x0, y0, x0 + w - 1, y0 + h - 1], fill=fill)
    draw.text((x0 + pad - left, y0 + pad - top), text, fill=_text_color(fill), font=font)


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box, width: int, dash: int) -> None:
    """PIL has no dashed lines: each edge is cut into dashes alternating TRUTH_COLORS."""
    x0, y0, x1, y1 = (int(v) for v in box)
    edges = (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0)))
    for (ax, ay), (bx, by) in edges:
        length = max(abs(bx - ax), abs(by - ay))
        for i, start in enumerate(range(0, length + 1, dash)):
            end = min(start + dash, length)
            sx, sy = ax + (bx - ax) * start // max(length, 1), ay + (by - ay) * start // max(length, 1)
            ex, ey = ax + (bx - ax) * end // max(length, 1), ay + (by - ay) * end // max(length, 1)
            draw.line([(sx, sy), (ex, ey)], fill=TRUTH_COLORS[i % 2], width=width)


def render_detections(image, boxes, classes, scores, class_names: Sequence[str], truth_boxes=None,
                      truth_classes=None, score_threshold: float = 0.3) -> Image.Image:
    """The drawing draw_detections writes, as a PIL image (for contact_sheet, or a notebook).

    image is uint8 [H, W, 3] (or grey, or a PIL image). Detections scoring below score_threshold
    are left out; scores=None draws every box with its class name only. The higher-scoring
    boxes are drawn last, on top. Ground truth is drawn first, dashed white and black, so the
    detections stay readable over it.
    """
    picture = _rgb(image)
    scale = display_scale(picture.height, picture.width)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.BILINEAR)
    width, height = picture.size
    line = max(2, round(max(width, height) / 320))
    font = _font(max(12, round(max(width, height) / 40)))
    draw = ImageDraw.Draw(picture)

    def name(cls: int) -> str:
        return class_names[cls] if 0 <= cls < len(class_names) else f"class {cls}"

    if truth_boxes is not None:
        truth = _pixel_boxes(truth_boxes, width, height)
        for box in truth:
            _dashed_rectangle(draw, box, max(1, line // 2), dash=4 * line)
        if truth_classes is not None:
            truth_cls = np.asarray(truth_classes).reshape(-1).astype(int)
            for box, cls in zip(truth, truth_cls, strict=True):
                _label(draw, name(cls), box[0], box[3] + 1, False, (0, 0, 0), font, picture.size)

    pixel = _pixel_boxes(boxes, width, height)
    cls = np.asarray(classes).reshape(-1).astype(int)
    if len(cls) != len(pixel):
        raise ValueError(f"{len(cls)} classes for {len(pixel)} boxes")
    if scores is None:
        order, score = np.arange(len(pixel)), None
    else:
        score = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(score) != len(pixel):
            raise ValueError(f"{len(score)} scores for {len(pixel)} boxes")
        order = [i for i in np.argsort(score, kind="stable") if score[i] >= score_threshold]
    for i in order:
        draw.rectangle(pixel[i].tolist(), outline=class_color(cls[i]), width=line)
    for i in order:  # labels after all boxes, so no box crosses a label
        text = name(cls[i]) if score is None else f"{name(cls[i])} {score[i]:.2f}"
        _label(draw, text, pixel[i][0], pixel[i][1], True, class_color(cls[i]), font, picture.size)
    return picture


def write_png(image, path: str | os.PathLike) -> pathlib.Path:
    """Encodes first and then writes whole (temporary name beside path, then os.replace)."""
    buffer = io.BytesIO()
    _rgb(image).save(buffer, format="PNG")
    atomic.write_bytes(path, buffer.getvalue())
    return pathlib.Path(path)


def draw_detections(image_uint8, boxes, classes, scores, class_names: Sequence[str],
                    path: str | os.PathLike, truth_boxes=None, truth_classes=None,
                    score_threshold: float = 0.3) -> pathlib.Path:
    """Writes the image with its detections (and its ground truth, if given) as a PNG at path:
    a box in its class's colour and a "name 0.87" tag per detection scoring score_threshold or
    more. Small images are enlarged (display_scale) so the tags are readable. Returns path."""
    picture = render_detections(image_uint8, boxes, classes, scores, class_names, truth_boxes,
                                truth_classes, score_threshold)
    return write_png(picture, path)


def contact_sheet(images: Sequence, path: str | os.PathLike, columns: int = 2,
                  titles: Sequence[str] | None = None) -> pathlib.Path:
    """Several images on one PNG, row by row, each under its title: the float and the int8
    model's detections of the same photograph side by side (columns=2, titles "float", "int8").

    images may be PIL images, uint8 arrays or paths of image files (draw_detections' PNGs).
    Each tile sits in a cell as large as the largest image, so smaller ones are not stretched.
    """
    tiles = [_rgb(image) for image in images]
    if not tiles:
        raise ValueError("no images for the contact sheet")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    if titles is not None and len(titles) != len(tiles):
        raise ValueError(f"{len(titles)} titles for {len(tiles)} images")
    cell_w = max(tile.width for tile in tiles)
    cell_h = max(tile.height for tile in tiles)
    font = _font(max(14, round(cell_w / 30)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_h = 0
    if titles is not None:
        left, top, right, bottom = probe.textbbox((0, 0), "Ag", font=font)
        title_h = (bottom - top) * 2
    gap = max(4, cell_w // 80)
    rows = math.ceil(len(tiles) / columns)
    cols = min(columns, len(tiles))
    sheet = Image.new("RGB", (cols * cell_w + (cols + 1) * gap, rows * (cell_h + title_h) + (rows + 1) * gap),
                      (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for n, tile in enumerate(tiles):
        row, col = divmod(n, columns)
        x = gap + col * (cell_w + gap)
        y = gap + row * (cell_h + title_h + gap)
        if titles is not None:
            left, top, right, bottom = draw.textbbox((0, 0), str(titles[n]), font=font)
            draw.text((x + (cell_w - (right - left)) // 2 - left, y + (title_h - (bottom - top)) // 2 - top),
                      str(titles[n]), fill=(255, 255, 255), font=font)
        sheet.paste(tile, (x + (cell_w - tile.width) // 2, y + title_h + (cell_h - tile.height) // 2))
    return write_png(sheet, path)

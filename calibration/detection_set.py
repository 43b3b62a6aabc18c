"""A small real-image detection set, composed offline from the embedded photographs.

In the spirit of Cut-Paste-Learn (Dwibedi et al. 2017, arXiv 1708.01642) and Copy-Paste (Ghiasi
et al. 2021, arXiv 2012.07177): objects cut from some photographs (OBJECTS: a cat, a cup, two
rockets, two heads, a camera, a clock, coins) are pasted onto other photographs (BACKGROUNDS:
brick, grass, gravel, text, the Hubble deep field, a stain, a retina, and the object-free parts of
the rocket, camera, coffee and clock photographs). Each image holds 1-4 objects, each 12-60% of
the image on its longer side (log-uniform, so small objects are common), some partly outside the
frame, mirrored half of the time, with jittered brightness and contrast. With no segmentation
masks at hand, objects are cut as rectangles, or as ellipses for the round ones; their edges are
feathered over 2 pixels (Cut-Paste-Learn's blending, against learning the paste boundary).

Boxes are exact. Every pasted object keeps a visibility map: its alpha, multiplied by (1 - alpha)
of every later paste covering it; its box bounds the pixels where that map is above zero, so a
later paste over one side shrinks the box to the visible part, and a paste through the middle
leaves it. A paste that would leave any object (itself, for the part outside the frame, or an
earlier one, under it) less than 40% visible is placed elsewhere, up to 20 tries, else left out:
no image holds an unlabelled fragment of a mostly hidden object.

Training and validation share the objects (the same photographs, necessarily; except the coins:
four for training, two others for validation) and differ in everything else: backgrounds come
from disjoint parts of the background photographs (the first 65% along each one's longer side
for training, the rest for validation), and each image is drawn from its own random stream,
seeded by (seed, split, index), so image i is the same whatever the count.

  python -m calibration.detection_set OUT_DIR --train 400 --val 100 --seed 0
writes OUT_DIR/train/*.jpg, OUT_DIR/train.json, OUT_DIR/val/*.jpg and OUT_DIR/val.json (COCO
instances JSON, read back with tfmobile.detection.datasets.read_coco), into a temporary directory
renamed to OUT_DIR at the end. In memory: build() here gives plain arrays,
tfmobile.detection.datasets.composed_set() the same images as a DetectionSet.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np
from PIL import Image

from calibration import arguments, images as images_lib

CLASS_NAMES = ("cat", "cup", "rocket", "head", "camera", "clock", "coin")
SPLITS = ("train", "val")
BOTH = SPLITS


@dataclasses.dataclass(frozen=True)
class ObjectCut:
    name: str  # a class of CLASS_NAMES
    photo: str  # a stem in calibration/images
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 pixels of the photograph, ends exclusive
    shape: str  # "rect" | "ellipse" (the ellipse inscribed in box)
    splits: tuple[str, ...] = BOTH


# Tight boxes decided by looking at each photograph with a 10-pixel grid drawn over it (the
# photographs as stored: at most 480 pixels a side).
OBJECTS = (
    ObjectCut("cat", "chelsea", (0, 0, 400, 300), "rect"),  # the face fills the frame; the right
    # 50 pixels are blurred background
    ObjectCut("cup", "coffee", (60, 12, 386, 312), "rect"),  # cup, saucer and spoon
    ObjectCut("rocket", "rocket", (231, 95, 253, 305), "rect"),  # Falcon 9, nose to launch mount
    ObjectCut("rocket", "astronaut", (332, 0, 431, 240), "rect"),  # the shuttle stack behind her
    ObjectCut("head", "astronaut", (143, 14, 283, 170), "ellipse"),  # hair to chin
    ObjectCut("head", "camera", (150, 60, 242, 182), "rect"),  # back of the head to the nose
    ObjectCut("camera", "camera", (242, 129, 306, 171), "rect"),  # eyepiece to lens
    ObjectCut("clock", "clock", (140, 91, 283, 216), "ellipse"),  # the blurred dial
    ObjectCut("coin", "coins", (132, 29, 180, 74), "ellipse", ("train",)),  # top row, third
    ObjectCut("coin", "coins", (192, 30, 240, 74), "ellipse", ("train",)),  # top row, fourth
    ObjectCut("coin", "coins", (305, 16, 364, 72), "ellipse", ("train",)),  # top row, sixth
    ObjectCut("coin", "coins", (245, 94, 297, 144), "ellipse", ("train",)),  # second row, fifth
    ObjectCut("coin", "coins", (255, 33, 298, 72), "ellipse", ("val",)),  # top row, fifth
    ObjectCut("coin", "coins", (317, 105, 357, 146), "ellipse", ("val",)),  # second row, sixth
)

# (photo, region x0, y0, x1, y1 or None for the whole photograph): parts holding none of the
# classes. The coins and astronaut photographs hold objects everywhere, chelsea is all cat.
BACKGROUNDS = (
    ("brick", None), ("grass", None), ("gravel", None), ("text", None),
    ("hubble_deep_field", None), ("ihc", None), ("retina", None),
    ("rocket", (0, 0, 225, 320)), ("rocket", (260, 0, 480, 320)),  # launch towers and sky
    ("camera", (320, 190, 480, 480)),  # lawn, buildings and a tripod leg
    ("coffee", (390, 0, 480, 320)),  # the table top
    ("clock", (0, 0, 135, 300)),  # the wall beside the clock
)
TRAIN_SHARE = 0.65  # of each background region's longer side, for training; the rest validates

OBJECTS_PER_IMAGE = (1, 4)
SCALE_RANGE = (0.12, 0.6)  # an object's longer side, as a share of the image side
OVERHANG = 0.25  # share of an object's side allowed outside the frame
MIN_VISIBLE = 0.4  # an object less visible than this (occluded or outside the frame) is not pasted
PLACEMENT_TRIES = 20
FEATHER_PX = 2
MIN_SIDE_PX = 4


@functools.cache
def _photo(stem: str) -> np.ndarray:
    return images_lib.decode(images_lib.EMBEDDED_DIR / f"{stem}.jpg")


def _background_region(photo: str, region, split: str) -> tuple[int, int, int, int]:
    """The split's part of a background region: training takes the first TRAIN_SHARE along the
    longer side, validation the rest."""
    h, w = _photo(photo).shape[:2]
    x0, y0, x1, y1 = region or (0, 0, w, h)
    if x1 - x0 >= y1 - y0:
        cut = x0 + int(round((x1 - x0) * TRAIN_SHARE))
        return (x0, y0, cut, y1) if split == "train" else (cut, y0, x1, y1)
    cut = y0 + int(round((y1 - y0) * TRAIN_SHARE))
    return (x0, y0, x1, cut) if split == "train" else (x0, cut, x1, y1)


def _background(rng: np.random.Generator, size: int, split: str) -> np.ndarray:
    photo, region = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    x0, y0, x1, y1 = _background_region(photo, region, split)
    side = max(1, int(min(x1 - x0, y1 - y0) * rng.uniform(0.5, 1.0)))
    left = int(rng.integers(x0, x1 - side + 1))
    top = int(rng.integers(y0, y1 - side + 1))
    crop = _photo(photo)[top:top + side, left:left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size),
                                                                          Image.BILINEAR))


def _alpha(height: int, width: int, shape: str) -> np.ndarray:
    """The paste's opacity: 1 inside, falling to 0.25 over the outer FEATHER_PX pixels, 0
    outside the shape (the corners of an ellipse's rectangle)."""
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    if shape == "rect":
        inset = np.minimum(np.minimum(rows, height - 1 - rows), np.minimum(cols, width - 1 - cols))
        return np.clip((inset + 0.5) / FEATHER_PX, 0, 1).astype(np.float32)
    ry, rx = height / 2, width / 2
    radius = np.sqrt(((rows + 0.5 - ry) / ry) ** 2 + ((cols + 0.5 - rx) / rx) ** 2)
    inset = (1 - radius) * min(ry, rx)  # pixels to the edge, about (exact on the minor axis)
    return np.where(radius <= 1, np.clip((inset + 0.5) / FEATHER_PX, 0, 1), 0).astype(np.float32)


def _cut(obj: ObjectCut, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The object scaled, maybe mirrored and photometrically jittered, as (float32 RGB patch,
    alpha)."""
    x0, y0, x1, y1 = obj.box
    source = _photo(obj.photo)[y0:y1, x0:x1]
    longer = np.exp(rng.uniform(*np.log(SCALE_RANGE))) * size
    scale = longer / max(source.shape[:2])
    height = max(MIN_SIDE_PX, int(round(source.shape[0] * scale)))
    width = max(MIN_SIDE_PX, int(round(source.shape[1] * scale)))
    patch = np.asarray(Image.fromarray(np.ascontiguousarray(source)).resize((width, height),
                                                                             Image.BILINEAR))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    patch = patch.astype(np.float32)
    mean = patch.mean()
    patch = np.clip((patch - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.2), 0, 255)
    return patch, _alpha(height, width, obj.shape)


class Canvas:
    """An image being composed, with a visibility map per pasted object: its alpha, times
    (1 - alpha) of every later paste. visible[i] > 0 exactly where object i contributes to a
    pixel, and its box is the box of those pixels."""

    def __init__(self, background: np.ndarray):
        self.pixels = np.asarray(background, np.float32).copy()
        self.size = self.pixels.shape[0]
        if self.pixels.shape[:2] != (self.size, self.size):
            raise ValueError(f"the canvas must be square, got {self.pixels.shape[:2]}")
        self.visible: list[np.ndarray] = []
        self.totals: list[float] = []  # each object's whole alpha, inside and outside the frame

    def _windows(self, alpha: np.ndarray, top: int, left: int):
        (rows, patch_rows) = _window(top, alpha.shape[0], self.size)
        (cols, patch_cols) = _window(left, alpha.shape[1], self.size)
        return rows, cols, patch_rows, patch_cols

    def fits(self, alpha: np.ndarray, top: int, left: int, min_visible: float = MIN_VISIBLE) -> bool:
        """Whether a paste at (top, left) leaves it (for its part inside the frame) and every
        object already pasted at least min_visible visible."""
        rows, cols, patch_rows, patch_cols = self._windows(alpha, top, left)
        a = alpha[patch_rows, patch_cols]
        if a.sum() < min_visible * float(alpha.sum()):
            return False
        return all(v.sum() - (v[rows, cols] * a).sum() >= min_visible * total
                   for v, total in zip(self.visible, self.totals, strict=True))

    def paste(self, patch: np.ndarray, alpha: np.ndarray, top: int, left: int) -> None:
        """Blends patch (float32 RGB, alpha's size) in at (top, left), maybe partly outside."""
        rows, cols, patch_rows, patch_cols = self._windows(alpha, top, left)
        a = alpha[patch_rows, patch_cols]
        self.pixels[rows, cols] += (patch[patch_rows, patch_cols] - self.pixels[rows, cols]) * a[..., None]
        for v in self.visible:
            v[rows, cols] *= 1 - a
        mine = np.zeros((self.size, self.size), np.float32)
        mine[rows, cols] = a
        self.visible.append(mine)
        self.totals.append(float(alpha.sum()))

    def boxes(self) -> np.ndarray:
        return np.array([visible_box(v) for v in self.visible], np.float32).reshape(-1, 4)

    def shares(self) -> list[float]:
        """Each object's visible share: what later pastes and the frame leave of it."""
        return [float(v.sum()) / total for v, total in zip(self.visible, self.totals, strict=True)]

    def image(self) -> np.ndarray:
        return np.clip(np.round(self.pixels), 0, 255).astype(np.uint8)


@dataclasses.dataclass
class Composite:
    """One composed image with its objects, and the canvas their boxes come from."""

    image: np.ndarray  # size x size x 3 uint8
    boxes: np.ndarray  # float32 [M, 4] normalized [ymin, xmin, ymax, xmax]
    classes: np.ndarray  # int32 [M]
    objects: list[ObjectCut]
    canvas: Canvas  # visibility maps and shares
    pasted: np.ndarray  # float32 [M, 4]: each paste's whole rectangle within the frame
    rejected: int  # pastes left out after PLACEMENT_TRIES (too occluded or outside the frame)


def _window(start: int, length: int, size: int) -> tuple[slice, slice]:
    """(canvas slice, patch slice) of a patch starting at start (maybe negative) on the canvas."""
    lo, hi = max(start, 0), min(start + length, size)
    return slice(lo, hi), slice(lo - start, hi - start)


def compose(index: int, size: int = 320, seed: int = 0, split: str = "train") -> Composite:
    """Image `index` of a split (module docstring), from its own random stream."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    canvas = Canvas(_background(rng, size, split))
    candidates = {name: [o for o in OBJECTS if o.name == name and split in o.splits]
                  for name in CLASS_NAMES}
    objects, pasted, rejected = [], [], 0
    for _ in range(int(rng.integers(OBJECTS_PER_IMAGE[0], OBJECTS_PER_IMAGE[1] + 1))):
        choices = candidates[CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]]
        obj = choices[int(rng.integers(len(choices)))]
        patch, alpha = _cut(obj, rng, size)
        ph, pw = alpha.shape
        for _ in range(PLACEMENT_TRIES):
            top = int(rng.integers(-int(ph * OVERHANG), size - ph + int(ph * OVERHANG) + 1))
            left = int(rng.integers(-int(pw * OVERHANG), size - pw + int(pw * OVERHANG) + 1))
            if canvas.fits(alpha, top, left):
                canvas.paste(patch, alpha, top, left)
                objects.append(obj)
                pasted.append((max(top, 0) / size, max(left, 0) / size,
                               min(top + ph, size) / size, min(left + pw, size) / size))
                break
        else:
            rejected += 1
    classes = np.array([CLASS_NAMES.index(o.name) for o in objects], np.int32)
    return Composite(canvas.image(), canvas.boxes(), classes, objects, canvas,
                     np.array(pasted, np.float32).reshape(-1, 4), rejected)


def visible_box(visible: np.ndarray) -> tuple[float, float, float, float]:
    """The normalized box of the pixels where a visibility map is above zero."""
    rows = np.flatnonzero((visible > 0).any(axis=1))
    cols = np.flatnonzero((visible > 0).any(axis=0))
    h, w = visible.shape
    return rows[0] / h, cols[0] / w, (rows[-1] + 1) / h, (cols[-1] + 1) / w


@dataclasses.dataclass
class ComposedSet:
    """Composed images and their objects as plain arrays: image i has id i + 1 and file name
    file_name(i). (This stage comes before tfmobile, so it does not build tfmobile's
    DetectionSet; tfmobile.detection.datasets.composed_set wraps this in one.)"""

    images: list[np.ndarray]  # size x size x 3 uint8 RGB
    boxes: list[np.ndarray]  # float32 [M, 4] normalized [ymin, xmin, ymax, xmax]
    classes: list[np.ndarray]  # int32 [M], indices into class_names
    class_names: tuple[str, ...] = CLASS_NAMES

    def __len__(self) -> int:
        return len(self.images)

    @staticmethod
    def file_name(index: int) -> str:
        return f"{index + 1:06d}.jpg"

    def write_coco(self, json_path, images_dir, quality: int = 95) -> None:
        """The set as a COCO instances JSON (category id = class id + 1, bbox in whole pixels:
        the boxes lie on pixel edges) and JPEG files in images_dir."""
        images_dir = pathlib.Path(images_dir)
        images_dir.mkdir(parents=True, exist_ok=True)
        entries, annotations = [], []
        for index, (image, boxes, classes) in enumerate(zip(self.images, self.boxes, self.classes,
                                                            strict=True)):
            height, width = image.shape[:2]
            entries.append({"id": index + 1, "file_name": self.file_name(index),
                            "height": height, "width": width})
            pixels = np.round(boxes.astype(np.float64) * [height, width, height, width]).astype(int)
            for (y0, x0, y1, x1), cls in zip(pixels.tolist(), classes.tolist(), strict=True):
                annotations.append({"id": len(annotations) + 1, "image_id": index + 1,
                                    "category_id": cls + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                    "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
            Image.fromarray(image).save(images_dir / self.file_name(index), quality=quality)
        categories = [{"id": i + 1, "name": name, "supercategory": ""}
                      for i, name in enumerate(self.class_names)]
        pathlib.Path(json_path).write_text(json.dumps(
            {"images": entries, "annotations": annotations, "categories": categories}))


def build(count: int, size: int = 320, seed: int = 0, split: str = "train") -> ComposedSet:
    """`count` composed images of a split, in memory; the same arguments give the same set."""
    composites = [compose(index, size, seed, split) for index in range(count)]
    return ComposedSet([c.image for c in composites], [c.boxes for c in composites],
                       [c.classes for c in composites])


def write(out_dir, train: int = 400, val: int = 100, seed: int = 0, size: int = 320) -> pathlib.Path:
    """Writes both splits as COCO JSON and JPEGs under out_dir, which must not exist (or be
    empty): they are written to a temporary directory beside it, renamed at the end, so a failed
    or interrupted run leaves no half-written set."""
    out = pathlib.Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(17, "exists and is not empty; remove it or give another directory",
                              os.fspath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for split, count in (("train", train), ("val", val)):
            build(count, size, seed, split).write_coco(temporary / f"{split}.json", temporary / split)
        if out.exists():
            out.rmdir()
        temporary.chmod(0o755)  # mkdtemp makes it private
        temporary.rename(out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out


def main(argv=None) -> None:
    parser = arguments.Parser(prog="python -m calibration.detection_set",
                     description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="where train/, train.json, val/ and val.json are written (must not exist)")
    parser.add_argument("--train", type=arguments.whole_number(1), default=400,
                        help="training images (default: 400)")
    parser.add_argument("--val", type=arguments.whole_number(1), default=100,
                        help="validation images (default: 100)")
    parser.add_argument("--seed", type=arguments.whole_number(0), default=0, help="random seed (default: 0)")
    parser.add_argument("--size", type=arguments.whole_number(32), default=320,
                        help="image side in pixels (default: 320)")
    args = parser.parse_args(argv)
    try:
        print(write(args.out_dir, args.train, args.val, args.seed, args.size))
    except OSError as err:
        parser.cannot_write(err, args.out_dir)


if __name__ == "__main__":
    main()

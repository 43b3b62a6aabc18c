"""Detection datasets: COCO JSON, Pascal VOC XML and TF Object Detection API TFRecords, read into one
in-memory form (DetectionSet) with the package's conventions: boxes float32 [ymin, xmin, ymax, xmax]
normalized by the image's height and width, 0-based contiguous class ids, no background id.

Images load lazily. A sample read from files keeps its path (a TFRecord sample its encoded bytes)
and decodes on each access to `.image`, so a COCO val set of 5000 images costs its annotations in
memory, not 5000 decoded arrays (about 4.6 GB). The image sizes the annotations are normalized by
are read from each file's header at read time and checked again on decoding: an annotation file
that disagrees with its images fails instead of normalizing boxes by the wrong size.

Malformed annotations either fail with a DatasetError (one line naming the file, the problem and
the fix) or are skipped and counted in DetectionSet.skipped by reason; never kept with a label
that may be wrong:
- crowd annotations (COCO iscrowd=1, OD API image/object/is_crowd): skipped, "crowd annotations".
  COCO's evaluator matches them as "ignore" regions, not as objects to detect or train on.
- VOC difficult objects (and OD API image/object/difficult): skipped, "difficult objects". The VOC
  devkit ignores them in evaluation; keeping them out of training is the simple, common choice.
- boxes with no area (xmax <= xmin or ymax <= ymin, also after clipping): skipped, "zero-area
  boxes".
- boxes beyond the image by more than 1 pixel: an error (the box or the image size is wrong);
  within 1 pixel: clipped (annotation tools round outwards).
- an unknown class name when class_names is given, a label id out of range, a missing image file,
  an image whose size disagrees with its annotation: errors.
"""

from __future__ import annotations

import dataclasses
import glob as glob_lib
import io
import json
import os
import pathlib
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence

import numpy as np

from calibration import images as images_lib

TOLERANCE_PX = 1.0  # boxes up to this far outside the image are clipped, further ones are errors
CROWD = "crowd annotations"
DIFFICULT = "difficult objects"
ZERO_AREA = "zero-area boxes"


class DatasetError(ValueError):
    """An annotation set that cannot be read without risking wrong labels; the message names the
    file, the problem and the fix, on one line."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _header_size(source: bytes | os.PathLike | str) -> tuple[int, int]:
    """(height, width) of an encoded image as decoding will return it (EXIF rotation applied),
    read from the header without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"not a decodable image: {_one_line(err)}") from None
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees: images_lib.decode transposes
        return width, height
    return height, width


class DetectionSample:
    """One image and its objects.

    `image` is an HxWx3 uint8 RGB array held in memory, or the encoded image (bytes) or a path to
    it, decoded on each access to `.image` and not cached (iterating a large set holds one decoded
    image at a time). height and width are the size the boxes were normalized by; for an encoded
    image they are read from its header when not given.
    boxes: float32 [M, 4] normalized [ymin, xmin, ymax, xmax]; classes: int32 [M], 0-based;
    image_id: the dataset's id (COCO's image id, for writing results back); file: the image's name
    relative to the dataset (COCO file_name, VOC filename, the TFRecord's image/filename).
    """

    __slots__ = ("boxes", "classes", "image_id", "file", "height", "width", "_image")

    def __init__(self, image, boxes, classes, image_id: int = 0, file: str = "", *,
                 height: int | None = None, width: int | None = None):
        self.image_id = int(image_id)
        self.file = str(file)
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise DatasetError(f"{file or 'sample'}: image must be HxWx3 uint8 RGB, got "
                                   f"{image.dtype} {image.shape}; convert it with calibration.images")
            shape = image.shape[:2]
            if (height, width) != (None, None) and (height, width) != shape:
                raise DatasetError(f"{file or 'sample'}: image is {shape[0]}x{shape[1]} but "
                                   f"height x width {height}x{width} was given; give the image's own")
            height, width = shape
        elif isinstance(image, (bytes, str, os.PathLike)):
            image = image if isinstance(image, bytes) else pathlib.Path(image)
            if height is None or width is None:
                try:
                    height, width = _header_size(image)
                except ValueError as err:
                    raise DatasetError(f"{file or image}: {err}; replace or remove the image") \
                        from None
        else:
            raise DatasetError(f"{file or 'sample'}: image must be an array, encoded bytes or a "
                               f"path, got {type(image).__name__}")
        self._image = image
        self.height, self.width = int(height), int(width)
        self.boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        self.classes = np.asarray(classes, dtype=np.int32).reshape(-1)
        _check_boxes(self.boxes, self.classes, self.file or f"image {self.image_id}")

    @property
    def image(self) -> np.ndarray:
        """The HxWx3 uint8 RGB image (decoded now when the sample holds a file or bytes)."""
        return self.load_image()

    def load_image(self) -> np.ndarray:
        if isinstance(self._image, np.ndarray):
            return self._image
        try:
            image = images_lib.decode(self._image)
        except ValueError as err:
            raise DatasetError(f"{self.file or self._image}: {err}; replace or remove the image") \
                from None
        if image.shape[:2] != (self.height, self.width):
            raise DatasetError(f"{self.file}: the image is {image.shape[0]}x{image.shape[1]} "
                               f"(height x width) but its annotation says {self.height}x"
                               f"{self.width}; fix the annotation's size so boxes normalize right")
        return image

    @property
    def path(self) -> pathlib.Path | None:
        """The image file this sample decodes, if it is file-backed."""
        return self._image if isinstance(self._image, pathlib.Path) else None

    def encoded(self) -> bytes | None:
        """The image's encoded bytes when the sample holds them or a file (None for an array)."""
        if isinstance(self._image, bytes):
            return self._image
        if isinstance(self._image, pathlib.Path):
            return self._image.read_bytes()
        return None

    def __repr__(self) -> str:
        return (f"DetectionSample(file={self.file!r}, image_id={self.image_id}, "
                f"size={self.height}x{self.width}, objects={len(self.classes)})")


def _check_boxes(boxes: np.ndarray, classes: np.ndarray, where: str) -> None:
    """A sample's arrays are consistent: readers guarantee it, so a failure here is a caller's
    bug in building samples by hand, named as such."""
    if len(boxes) != len(classes):
        raise DatasetError(f"{where}: {len(boxes)} boxes but {len(classes)} classes; give one "
                           "class per box")
    if len(boxes) and not (np.isfinite(boxes).all() and (boxes >= 0).all() and (boxes <= 1).all()):
        raise DatasetError(f"{where}: boxes must be normalized to [0, 1], got "
                           f"{boxes.min():g} to {boxes.max():g}; divide by the image's size")
    if len(boxes) and not ((boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()):
        raise DatasetError(f"{where}: boxes must be [ymin, xmin, ymax, xmax] with ymax > ymin and "
                           "xmax > xmin; reorder the coordinates or drop empty boxes")
    if len(classes) and classes.min() < 0:
        raise DatasetError(f"{where}: class ids must be 0-based and non-negative, got "
                           f"{classes.min()}")


@dataclasses.dataclass
class DetectionSet:
    """Samples with the names of their classes (class id i is class_names[i]).

    skipped counts the annotations left out, by reason. coco_category_ids[i] is the COCO
    category id of class i (read_coco; -1 where a given class name has no category in the
    file), for writing detections back in COCO ids; None for sets not read from COCO.
    """

    samples: list[DetectionSample]
    class_names: tuple[str, ...]
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    coco_category_ids: tuple[int, ...] | None = None

    def __post_init__(self):
        self.class_names = tuple(self.class_names)
        for sample in self.samples:
            if len(sample.classes) and sample.classes.max() >= len(self.class_names):
                raise DatasetError(f"{sample.file or sample.image_id}: class id "
                                   f"{sample.classes.max()} but only {len(self.class_names)} "
                                   "class names; give a name for every class")

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[DetectionSample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> DetectionSample:
        return self.samples[index]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> dict:
        counts = np.bincount(np.concatenate([s.classes for s in self.samples] or [np.zeros(0, int)]),
                             minlength=self.num_classes)
        return {"images": len(self.samples), "objects": int(counts.sum()),
                "per_class": dict(zip(self.class_names, counts.tolist(), strict=True)),
                "skipped": dict(self.skipped)}


def _count(skipped: dict[str, int], reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


def _pixel_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int,
               where: str) -> tuple[float, float, float, float] | None:
    """A pixel box [x0, x1) x [y0, y1) as normalized [ymin, xmin, ymax, xmax], clipped when it
    is outside the image by at most TOLERANCE_PX; None when it has no area (then or after
    clipping); a DatasetError when it is further outside."""
    values = (x0, y0, x1, y1)
    if not all(np.isfinite(values)):
        raise DatasetError(f"{where}: box {values} is not finite; fix or remove the annotation")
    if x1 <= x0 or y1 <= y0:
        return None
    if (min(x0, y0, x1, y1) < -TOLERANCE_PX or max(x0, x1) > width + TOLERANCE_PX
            or max(y0, y1) > height + TOLERANCE_PX):
        raise DatasetError(f"{where}: box x {x0:g}-{x1:g}, y {y0:g}-{y1:g} (pixels) lies outside "
                           f"the {width}x{height} image by more than {TOLERANCE_PX:g} pixel; "
                           "fix the box or the image size in the annotation")
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    if x1 <= x0 or y1 <= y0:
        return None
    return y0 / height, x0 / width, y1 / height, x1 / width


def _class_index(name: str, names: Sequence[str], where: str) -> int:
    try:
        return names.index(name)
    except ValueError:
        known = ", ".join(repr(n) for n in names[:30]) + (", ..." if len(names) > 30 else "")
        raise DatasetError(f"{where}: unknown class {name!r} (known: {known}); add it to "
                           "class_names or fix the annotation") from None


def _image_file(images_dir: pathlib.Path, name: str, where: str) -> pathlib.Path:
    path = images_dir / name
    if not path.is_file():
        raise DatasetError(f"{where}: image file {path} does not exist; put the image there or "
                           "give the right images directory")
    return path


def _file_sample(path: pathlib.Path, boxes, classes, image_id: int, name: str,
                 size: tuple[int, int] | None, where: str) -> DetectionSample:
    """A lazily loaded sample, after checking the annotation's (height, width) against the
    image's header."""
    try:
        actual = _header_size(path)
    except ValueError as err:
        raise DatasetError(f"{path}: {err}; replace the image or remove it from {where}") from None
    if size is not None and tuple(size) != actual:
        raise DatasetError(f"{where}: {name} is {actual[0]}x{actual[1]} (height x width) but the "
                           f"annotation says {size[0]}x{size[1]}; fix the annotation's size so "
                           "boxes normalize right")
    return DetectionSample(path, boxes, classes, image_id, name, height=actual[0], width=actual[1])


def composed_set(count: int, size: int = 320, seed: int = 0, split: str = "train") -> DetectionSet:
    """The real-image set composed from the embedded photographs (calibration.detection_set),
    in memory: the same images, ids and file names its CLI writes for these arguments."""
    from calibration import detection_set

    composed = detection_set.build(count, size, seed, split)
    samples = [DetectionSample(image, boxes, classes, index + 1, composed.file_name(index))
               for index, (image, boxes, classes) in enumerate(zip(composed.images, composed.boxes,
                                                                   composed.classes, strict=True))]
    return DetectionSet(samples, composed.class_names)


# --- COCO -------------------------------------------------------------------------------------


def read_coco(annotations_json, images_dir, class_names: Sequence[str] | None = None) -> DetectionSet:
    """A COCO instances JSON and its images directory.

    COCO's sparse category ids (1-90 for COCO 2017) become 0-based ids in increasing category id
    order (the 80 names in their usual order), or in the order of class_names when given; every
    category of the file must then be one of class_names. coco_category_ids keeps the mapping
    back. bbox is pixel [x, y, width, height] with (0, 0) the top-left corner of the top-left
    pixel. Images without annotations are kept: they are negatives (COCO's evaluator counts
    false positives on them).
    """
    json_path = pathlib.Path(annotations_json)
    images_dir = pathlib.Path(images_dir)
    try:
        data = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{json_path} does not exist; give the COCO annotations file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"cannot read {json_path}: {_one_line(err)}; give a COCO instances "
                           "JSON file") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"{json_path}: no 'images' list; give a COCO instances JSON file")
    if not images_dir.is_dir():
        raise DatasetError(f"images directory {images_dir} does not exist; give the directory "
                           f"the file names of {json_path.name} are relative to")
    where = str(json_path)
    try:
        categories = sorted(data.get("categories") or [], key=lambda c: int(c["id"]))
        category_names = {int(c["id"]): str(c["name"]) for c in categories}
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{where}: every category needs an integer 'id' and a 'name'; fix the "
                           "'categories' list") from None
    if len(set(category_names.values())) != len(category_names):
        raise DatasetError(f"{where}: two categories share a name; give each category its own name")
    if class_names is None:
        names = tuple(category_names.values())
        index_of = {cid: i for i, cid in enumerate(category_names)}
        coco_ids = tuple(category_names)
    else:
        names = tuple(class_names)
        index_of = {cid: _class_index(name, names, f"{where}: category {cid}")
                    for cid, name in category_names.items()}
        by_name = {name: cid for cid, name in category_names.items()}
        coco_ids = tuple(by_name.get(name, -1) for name in names)

    images = {}
    for image in data["images"]:
        try:
            image_id, file_name = int(image["id"]), str(image["file_name"])
            size = (int(image["height"]), int(image["width"]))
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{where}: image entry {str(image)[:80]} needs 'id', 'file_name', "
                               "'height' and 'width'; fix the 'images' list") from None
        if image_id in images:
            raise DatasetError(f"{where}: image id {image_id} appears twice; give each image its "
                               "own id")
        images[image_id] = (file_name, size)

    per_image: dict[int, tuple[list, list]] = {image_id: ([], []) for image_id in images}
    skipped: dict[str, int] = {}
    for ann in data.get("annotations") or []:
        try:
            image_id, category_id = int(ann["image_id"]), int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{where}: annotation {ann.get('id', '?') if isinstance(ann, dict) else '?'}"
                               " needs 'image_id', 'category_id' and a 4-number 'bbox'; fix it "
                               "or remove it") from None
        if image_id not in images:
            raise DatasetError(f"{where}: annotation {ann.get('id', '?')} refers to image id "
                               f"{image_id}, which is not in 'images'; add the image or remove "
                               "the annotation")
        file_name, (height, width) = images[image_id]
        place = f"{where}: annotation {ann.get('id', '?')} on {file_name}"
        if category_id not in index_of:
            known = ", ".join(str(i) for i in sorted(index_of)[:12]) + (", ..." if len(index_of) > 12
                                                                       else "")
            raise DatasetError(f"{place}: category id {category_id} is not in 'categories' "
                               f"(ids {known}); fix the annotation's category")
        if ann.get("iscrowd", 0):
            _count(skipped, CROWD)
            continue
        box = _pixel_box(x, y, x + w, y + h, width, height, f"{place}, bbox {[x, y, w, h]}")
        if box is None:
            _count(skipped, ZERO_AREA)
            continue
        per_image[image_id][0].append(box)
        per_image[image_id][1].append(index_of[category_id])

    samples = []
    for image_id, (file_name, size) in images.items():
        boxes, classes = per_image[image_id]
        path = _image_file(images_dir, file_name, where)
        samples.append(_file_sample(path, boxes, classes, image_id, file_name, size, where))
    return DetectionSet(samples, names, skipped, coco_ids)


def _pixel_xywh(sample: DetectionSample) -> list[list[float]]:
    scale = np.array([sample.height, sample.width, sample.height, sample.width], np.float64)
    pixels = sample.boxes.astype(np.float64) * scale
    return [[round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
            for y0, x0, y1, x1 in pixels.tolist()]


def write_coco(dataset: DetectionSet, path, images_dir=None, jpeg_quality: int = 95) -> pathlib.Path:
    """Writes dataset as a COCO instances JSON at path (bbox in pixels, rounded to 0.01).

    With images_dir, also writes each image there under its sample's file name: a file-backed
    or encoded sample's bytes are copied as they are, an in-memory image is written as a JPEG.
    Category ids are coco_category_ids when the set has one for every class, otherwise class
    id + 1.
    """
    path = pathlib.Path(path)
    if dataset.coco_category_ids is not None and -1 not in dataset.coco_category_ids:
        category_ids = dataset.coco_category_ids
    else:
        category_ids = tuple(range(1, dataset.num_classes + 1))
    images, annotations, seen = [], [], set()
    for sample in dataset:
        name = sample.file or f"{sample.image_id:012d}.jpg"
        if name in seen:
            raise DatasetError(f"two samples are both named {name!r}; give each its own file name")
        seen.add(name)
        images.append({"id": sample.image_id, "file_name": name, "height": sample.height,
                       "width": sample.width})
        for box, cls in zip(_pixel_xywh(sample), sample.classes.tolist(), strict=True):
            annotations.append({"id": len(annotations) + 1, "image_id": sample.image_id,
                                "category_id": category_ids[cls], "bbox": box,
                                "area": round(box[2] * box[3], 2), "iscrowd": 0})
        if images_dir is not None:
            target = pathlib.Path(images_dir) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            encoded = sample.encoded()
            if encoded is not None:
                target.write_bytes(encoded)
            else:
                _save_jpeg(sample.image, target, jpeg_quality)
    categories = [{"id": cid, "name": name, "supercategory": ""}
                  for cid, name in zip(category_ids, dataset.class_names, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    return path


def _save_jpeg(image: np.ndarray, target, quality: int) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(image)).save(target, format="JPEG", quality=quality)


def _jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    _save_jpeg(image, buffer, quality)
    return buffer.getvalue()


# --- Pascal VOC -------------------------------------------------------------------------------


def read_voc(root_or_annotations_dir, images_dir=None, class_names: Sequence[str] | None = None,
             split: str | None = None) -> DetectionSet:
    """Pascal VOC XML annotations.

    Takes the VOC layout (root/Annotations/*.xml, root/JPEGImages, and with split the ids listed
    in root/ImageSets/Main/<split>.txt), or a directory of XML files with images_dir (default:
    the same directory). Without class_names, the classes are every object name of the files in
    sorted order (for VOC, its 20 classes in their usual order).

    VOC boxes are 1-based inclusive pixels: xmin = 1, xmax = width spans the whole image, so the
    normalized box is ((xmin - 1) / width, xmax / width); a box with xmin == xmax is one pixel
    wide, xmax < xmin has no area. (The TF OD API's create_pascal_tf_record divides xmin without
    the - 1, a pixel to the right.) Difficult objects are left out and counted: the devkit
    ignores them in evaluation.
    """
    root = pathlib.Path(root_or_annotations_dir)
    if not root.is_dir():
        raise DatasetError(f"VOC directory {root} does not exist; give the VOC root (holding "
                           "Annotations/ and JPEGImages/) or a directory of XML files")
    annotations_dir = root / "Annotations" if (root / "Annotations").is_dir() else root
    if images_dir is None:
        images_dir = root / "JPEGImages" if (root / "JPEGImages").is_dir() else annotations_dir
    images_dir = pathlib.Path(images_dir)
    if split is not None:
        list_file = root / "ImageSets" / "Main" / f"{split}.txt"
        if not list_file.is_file():
            raise DatasetError(f"split file {list_file} does not exist; give a split that "
                               f"ImageSets/Main holds or no split")
        ids = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        xml_files = [annotations_dir / f"{i}.xml" for i in ids]
        for xml_file in xml_files:
            if not xml_file.is_file():
                raise DatasetError(f"{list_file} lists {xml_file.stem} but {xml_file} does not "
                                   "exist; add the annotation or remove the id")
    else:
        xml_files = sorted(annotations_dir.glob("*.xml"))
    if not xml_files:
        raise DatasetError(f"no .xml annotations in {annotations_dir}; give a VOC root or a "
                           "directory of VOC XML files")

    parsed = [_parse_voc(xml_file) for xml_file in xml_files]
    if class_names is None:
        names = tuple(sorted({obj[0] for _, _, objects in parsed for obj in objects}))
    else:
        names = tuple(class_names)
    skipped: dict[str, int] = {}
    samples = []
    for image_id, (xml_file, (filename, size, objects)) in enumerate(zip(xml_files, parsed,
                                                                         strict=True)):
        path = _image_file(images_dir, filename, str(xml_file))
        if size is None:  # no <size>: the image's header decides (_file_sample reads it too)
            try:
                size = _header_size(path)
            except ValueError as err:
                raise DatasetError(f"{path}: {err}; replace the image or remove {xml_file}") \
                    from None
        height, width = size
        boxes, classes = [], []
        for name, difficult, (xmin, ymin, xmax, ymax) in objects:
            place = f"{xml_file}: object {name!r}"
            index = _class_index(name, names, place)
            if difficult:
                _count(skipped, DIFFICULT)
                continue
            box = _pixel_box(xmin - 1, ymin - 1, xmax, ymax, width, height,
                             f"{place} (xmin {xmin:g}, ymin {ymin:g}, xmax {xmax:g}, ymax {ymax:g})")
            if box is None:
                _count(skipped, ZERO_AREA)
                continue
            boxes.append(box)
            classes.append(index)
        samples.append(_file_sample(path, boxes, classes, image_id, filename, size, str(xml_file)))
    return DetectionSet(samples, names, skipped)


def _parse_voc(xml_file: pathlib.Path):
    """(filename, (height, width) or None, [(name, difficult, (xmin, ymin, xmax, ymax))])."""
    try:
        root = ElementTree.parse(xml_file).getroot()
    except (OSError, ElementTree.ParseError) as err:
        raise DatasetError(f"cannot read {xml_file}: {_one_line(err)}; fix or remove the file") \
            from None

    def number(element, tag: str, where: str) -> float:
        text = element.findtext(tag)
        try:
            return float(text)
        except (TypeError, ValueError):
            raise DatasetError(f"{xml_file}: {where} <{tag}> is {text!r}, not a number; fix the "
                               "annotation") from None

    filename = (root.findtext("filename") or "").strip() or f"{xml_file.stem}.jpg"
    size_element = root.find("size")
    size = None
    if size_element is not None and size_element.findtext("width") and size_element.findtext("height"):
        size = (int(number(size_element, "height", "<size>")),
                int(number(size_element, "width", "<size>")))
        if min(size) <= 0:
            size = None  # some exporters write 0: the image's header decides
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DatasetError(f"{xml_file}: an <object> has no <name>; name it or remove it")
        box = obj.find("bndbox")
        if box is None:
            raise DatasetError(f"{xml_file}: object {name!r} has no <bndbox>; add it or remove "
                               "the object")
        coords = tuple(number(box, tag, f"object {name!r}") for tag in ("xmin", "ymin", "xmax", "ymax"))
        difficult = (obj.findtext("difficult") or "0").strip() not in ("0", "", "false")
        objects.append((name, difficult, coords))
    return filename, size, objects


# --- TF Object Detection API TFRecords --------------------------------------------------------


def read_label_map(path) -> dict[int, str]:
    """An OD API label_map.pbtxt (`item { id: 1 name: 'cat' }`) as {id: name}."""
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise DatasetError(f"cannot read label map {path}: {err.strerror or err}; give an OD API "
                           "label_map.pbtxt") from None
    result = {}
    for item in re.findall(r"item\s*\{(.*?)\}", text, flags=re.S):
        found_id = re.search(r"\bid\s*:\s*(-?\d+)", item)
        found_name = re.search(r"\bname\s*:\s*[\"']([^\"']*)[\"']", item)
        if not found_id or not found_name:
            raise DatasetError(f"{path}: item {{{_one_line(item)}}} needs an id and a name; fix "
                               "the label map")
        result[int(found_id.group(1))] = found_name.group(1)
    if not result:
        raise DatasetError(f"{path} holds no 'item {{ id: ... name: ... }}'; give an OD API label map")
    return result


def write_label_map(class_names: Sequence[str], path) -> pathlib.Path:
    """The OD API label_map.pbtxt for class_names (class id i is item id i + 1, as
    write_tfrecord labels it)."""
    path = pathlib.Path(path)
    items = [f"item {{\n  id: {i + 1}\n  name: {json.dumps(name)}\n}}\n"
             for i, name in enumerate(class_names)]
    path.write_text("".join(items))
    return path


def _record_files(path_or_glob) -> list[str]:
    text = os.fspath(path_or_glob)
    files = sorted(glob_lib.glob(text)) if glob_lib.has_magic(text) else [text]
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise DatasetError(f"no TFRecord file matches {text}; give a .tfrecord path or a glob "
                           "(e.g. 'train-*.tfrecord')")
    return files


def _iterate_records(file: str) -> Iterator[bytes]:
    import tensorflow as tf

    try:
        yield from tf.data.TFRecordDataset(file).as_numpy_iterator()
    except tf.errors.OpError as err:
        reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", err.message.splitlines()[0]).strip()
        raise DatasetError(f"cannot read TFRecord {file}: {reason or type(err).__name__}; "
                           "rewrite the file") from None


def read_tfrecord(path_or_glob, class_names: Sequence[str] | None = None,
                  label_map=None) -> DetectionSet:
    """TFRecords of tf.train.Examples in the TF Object Detection API's format: image/encoded,
    image/height, image/width, image/filename, image/source_id, image/object/bbox/{ymin,xmin,ymax,
    xmax} (normalized), image/object/class/label (1-based) and image/object/class/text.

    Classes come from class_names (an object's text is looked up there, or, with no text, its
    label is taken as 1-based index into it), else from label_map (a label_map.pbtxt path or an
    {id: name} dict; its ids in increasing order become 0, 1, ...), else from the records' own
    label/text pairs (ids in increasing order; every object must then carry its text, and a
    label must always carry the same text). Encoded images stay in memory (their compressed
    size) and are decoded on access. image_id is source_id when it is a number, else the record's
    position.
    """
    from tensorflow.core.example import example_pb2

    files = _record_files(path_or_glob)
    if isinstance(label_map, (str, os.PathLike)):
        label_map = read_label_map(label_map)
    records = []  # (where, features, objects)
    for file in files:
        for position, record in enumerate(_iterate_records(file)):
            where = f"{file} record {position}"
            try:
                example = example_pb2.Example.FromString(record)
            except Exception:  # noqa: BLE001 - protobuf's DecodeError, not importable stably
                raise DatasetError(f"{where} is not a tf.train.Example; write Examples in the OD "
                                   "API format") from None
            records.append((where, example.features.feature))

    def floats(feature, key):
        return list(feature[key].float_list.value) if key in feature else []

    def ints(feature, key):
        return list(feature[key].int64_list.value) if key in feature else []

    def texts(feature, key):
        return [v.decode("utf-8", "replace") for v in feature[key].bytes_list.value] \
            if key in feature else []

    # The label -> name mapping first: every record's pairs must agree before any is used.
    if class_names is not None:
        names = tuple(class_names)
        index_of_label = {i + 1: i for i in range(len(names))}
    elif label_map is not None:
        ids = sorted(label_map)
        names = tuple(label_map[i] for i in ids)
        index_of_label = {label: i for i, label in enumerate(ids)}
    else:
        pairs: dict[int, str] = {}
        unnamed: set[str] = set()
        for where, feature in records:
            labels = ints(feature, "image/object/class/label")
            names_here = texts(feature, "image/object/class/text")
            for i, label in enumerate(labels):
                if i >= len(names_here):
                    raise DatasetError(f"{where}: label {label} has no image/object/class/text; "
                                       "give class_names or label_map")
                if pairs.setdefault(label, names_here[i]) != names_here[i]:
                    raise DatasetError(f"{where}: label {label} is {names_here[i]!r} here and "
                                       f"{pairs[label]!r} elsewhere; fix the labels or give "
                                       "class_names")
            if not labels:
                unnamed.update(names_here)
        if len(set(pairs.values())) != len(pairs):
            raise DatasetError(f"{files[0]}: two labels share a name ({sorted(pairs.items())}); "
                               "fix the labels or give class_names")
        ids = sorted(pairs)
        names = tuple(pairs[i] for i in ids) + tuple(sorted(unnamed - set(pairs.values())))
        index_of_label = {label: i for i, label in enumerate(ids)}

    skipped: dict[str, int] = {}
    samples = []
    for position, (where, feature) in enumerate(records):
        encoded = feature["image/encoded"].bytes_list.value if "image/encoded" in feature else []
        if not encoded:
            raise DatasetError(f"{where}: no image/encoded bytes; write the encoded image in "
                               "the record")
        encoded = encoded[0]
        filename = (texts(feature, "image/filename") or [""])[0]
        source_id = (texts(feature, "image/source_id") or [""])[0]
        height = (ints(feature, "image/height") or [0])[0]
        width = (ints(feature, "image/width") or [0])[0]
        try:
            actual = _header_size(encoded)
        except ValueError as err:
            raise DatasetError(f"{where} ({filename}): {err}; rewrite the record") from None
        if height and width and (height, width) != actual:
            raise DatasetError(f"{where} ({filename}): image/height x width is {height}x{width} "
                               f"but the image is {actual[0]}x{actual[1]}; fix the record")
        height, width = actual
        coords = [floats(feature, f"image/object/bbox/{k}") for k in ("ymin", "xmin", "ymax", "xmax")]
        labels = ints(feature, "image/object/class/label")
        names_here = texts(feature, "image/object/class/text")
        crowd = ints(feature, "image/object/is_crowd")
        difficult = ints(feature, "image/object/difficult")
        count = len(coords[0])
        if any(len(c) != count for c in coords) or (labels and len(labels) != count) or (
                names_here and len(names_here) != count) or (not labels and not names_here and count):
            raise DatasetError(f"{where} ({filename}): {count} ymin, {len(coords[1])} xmin, "
                               f"{len(coords[2])} ymax, {len(coords[3])} xmax, {len(labels)} labels, "
                               f"{len(names_here)} texts; give one of each per object")
        boxes, classes = [], []
        for i in range(count):
            place = f"{where} ({filename}) object {i}"
            if names_here:
                index = _class_index(names_here[i], names, place)
            elif labels[i] in index_of_label:
                index = index_of_label[labels[i]]
            else:
                raise DatasetError(f"{place}: label {labels[i]} is out of range (labels "
                                   f"{min(index_of_label, default=1)}-"
                                   f"{max(index_of_label, default=0)} for {len(names)} classes); "
                                   "fix the label or give class_names or label_map")
            if i < len(crowd) and crowd[i]:
                _count(skipped, CROWD)
                continue
            if i < len(difficult) and difficult[i]:
                _count(skipped, DIFFICULT)
                continue
            ymin, xmin, ymax, xmax = (c[i] for c in coords)
            box = _pixel_box(xmin * width, ymin * height, xmax * width, ymax * height, width,
                             height, f"{place}, box [ymin {ymin:g}, xmin {xmin:g}, ymax {ymax:g}, "
                             f"xmax {xmax:g}]")
            if box is None:
                _count(skipped, ZERO_AREA)
                continue
            boxes.append(box)
            classes.append(index)
        image_id = int(source_id) if source_id.isdigit() else position
        samples.append(DetectionSample(encoded, boxes, classes, image_id, filename or where,
                                       height=height, width=width))
    return DetectionSet(samples, names, skipped)


def write_tfrecord(dataset: DetectionSet, path, jpeg_quality: int = 95) -> pathlib.Path:
    """Writes dataset as one TFRecord of OD API tf.train.Examples (labels 1-based, class text,
    encoded images as they are, in-memory ones as JPEG)."""
    import tensorflow as tf

    def bytes_feature(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    def int_feature(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def float_feature(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(os.fspath(path)) as writer:
        for sample in dataset:
            encoded = sample.encoded()
            if encoded is None:
                encoded = _jpeg_bytes(sample.image, jpeg_quality)
                image_format = b"jpeg"
            else:
                suffix = pathlib.PurePath(sample.file).suffix.lstrip(".").lower()
                image_format = {"jpg": "jpeg", "": "jpeg"}.get(suffix, suffix).encode()
            ymin, xmin, ymax, xmax = sample.boxes.T.tolist() if len(sample.boxes) else ([],) * 4
            name = sample.file or f"{sample.image_id}.jpg"
            feature = {
                "image/encoded": bytes_feature([encoded]),
                "image/format": bytes_feature([image_format]),
                "image/filename": bytes_feature([name.encode()]),
                "image/source_id": bytes_feature([str(sample.image_id).encode()]),
                "image/height": int_feature([sample.height]),
                "image/width": int_feature([sample.width]),
                "image/object/bbox/ymin": float_feature(ymin),
                "image/object/bbox/xmin": float_feature(xmin),
                "image/object/bbox/ymax": float_feature(ymax),
                "image/object/bbox/xmax": float_feature(xmax),
                "image/object/class/label": int_feature((sample.classes + 1).tolist()),
                "image/object/class/text": bytes_feature(
                    [dataset.class_names[c].encode() for c in sample.classes.tolist()]),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    return path

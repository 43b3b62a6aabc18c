"""Calibration sources: a directory of images, a .npy/.npz array, a TFRecord of encoded images,
or the embedded photographs. Each loads as RGB uint8 images plus what was skipped.

A source is split deterministically: every `HOLDOUT_EVERY`-th image is held out for measuring
fidelity, the rest calibrate. Sources with too few images to spare one are measured on the
embedded held-out photographs instead (the report says which).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re

import numpy as np

from calibration import images as images_lib

HOLDOUT_EVERY = 4  # every 4th image of a source is held out from calibration
EMBEDDED = "embedded"


class SourceError(ValueError):
    """The source cannot be used: missing, unreadable, or holds no decodable image."""


@dataclasses.dataclass
class ImageSet:
    images: list[np.ndarray]  # HxWx3 uint8 RGB
    source: str
    kind: str  # embedded | directory | array | tfrecord
    skipped: int = 0
    skipped_examples: list[str] = dataclasses.field(default_factory=list)

    def split(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(calibration images, held-out images); held-out is empty below 2 images."""
        if len(self.images) < 2:
            return list(self.images), []
        held = [im for i, im in enumerate(self.images) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
        if not held:
            held = [self.images[-1]]
        held_ids = {id(im) for im in held}
        return [im for im in self.images if id(im) not in held_ids], held

    def describe(self) -> dict:
        return {"source": self.source, "kind": self.kind, "images": len(self.images),
                "skipped": self.skipped, "skipped_examples": self.skipped_examples[:5]}


def load(source: str | None) -> ImageSet:
    """Loads a source by path (None or "embedded": the bundled photographs)."""
    if source in (None, "", EMBEDDED):
        return ImageSet(images_lib.embedded_images(), EMBEDDED, "embedded")
    path = pathlib.Path(source)
    if not path.exists():
        raise SourceError(f"calibration source {source!r} does not exist; give a directory of "
                          "images, a .npy/.npz array, a .tfrecord file, or omit it for the "
                          "embedded photographs")
    if path.is_dir():
        result = _load_directory(path)
    elif path.suffix.lower() in (".npy", ".npz"):
        result = _load_array(path)
    elif path.suffix.lower() in (".tfrecord", ".tfrecords") or ".tfrecord" in path.name:
        result = _load_tfrecord(path)
    elif path.suffix.lower() in images_lib.IMAGE_SUFFIXES:
        result = _load_files([path], str(path), "file")
    else:
        raise SourceError(f"calibration source {source!r} is not a directory, .npy/.npz, "
                          ".tfrecord or image file")
    if not result.images:
        raise SourceError(f"calibration source {source!r} holds no decodable image "
                          f"({result.skipped} unreadable)")
    return result


def _load_files(paths, source: str, kind: str) -> ImageSet:
    result = ImageSet([], source, kind)
    for path in paths:
        try:
            result.images.append(images_lib.decode(path))
        except ValueError:
            result.skipped += 1
            result.skipped_examples.append(os.fspath(path))
    return result


def _load_directory(path: pathlib.Path) -> ImageSet:
    files = sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in images_lib.IMAGE_SUFFIXES
    )
    return _load_files(files, os.fspath(path), "directory")


def _to_rgb_uint8(array, source: str) -> list[np.ndarray]:
    if not isinstance(array, np.ndarray):  # an .npz member that is not an .npy array
        raise SourceError(f"{source}: not a numpy array; save the images with np.save or np.savez")
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        raise SourceError(f"{source}: shape {array.shape} reads as {array.shape[0]} grayscale "
                          f"images {array.shape[2]} pixels wide; save one RGB image as "
                          f"1 x H x W x {array.shape[-1]} (array[None])")
    if array.ndim == 3:  # N x H x W grayscale
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise SourceError(f"{source}: expected images as N x H x W [x 1|3|4], got shape "
                          f"{array.shape}")
    if 0 in array.shape[1:3]:
        raise SourceError(f"{source}: images of {array.shape[1]} x {array.shape[2]} pixels "
                          "hold nothing")
    if array.dtype != np.uint8:
        if array.dtype.kind not in "iuf":  # booleans, complex numbers, strings, dates...
            raise SourceError(f"{source}: pixel values must be uint8 (or numbers in [0, 255]), "
                              f"got {array.dtype}")
        if array.size and not np.isfinite(array).all():
            raise SourceError(f"{source}: pixel values must be numbers in [0, 255], and some "
                              "are NaN or infinite")
        if array.size and (array.min() < 0 or array.max() > 255):
            raise SourceError(f"{source}: pixel values must be uint8 or numbers in [0, 255], "
                              f"got {array.min():g} to {array.max():g}")
        if array.dtype.kind == "f" and array.size and 0 < array.max() <= 1:
            raise SourceError(f"{source}: pixel values run from {array.min():g} to "
                              f"{array.max():g}, images scaled to [0, 1]; give them in [0, 255] "
                              "(multiply by 255)")
        array = np.round(array).astype(np.uint8)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return [np.ascontiguousarray(im[..., :3]) for im in array]


def _load_array(path: pathlib.Path) -> ImageSet:
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                keys = [k for k in ("images", "x", "x_train") if k in data.files] or data.files
                if not keys:
                    raise SourceError(f"{path} holds no arrays")
                where = f"{os.fspath(path)}[{keys[0]!r}]" if len(data.files) > 1 else None
                array = data[keys[0]]  # read here: a damaged member fails now
        else:
            array, where = data, None
    except SourceError:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged .npy/.npz (zip) fails in many ways
        reason = " ".join(str(err).split()) or type(err).__name__
        raise SourceError(f"cannot read {path}: {reason}") from None
    return ImageSet(_to_rgb_uint8(array, where or os.fspath(path)), os.fspath(path), "array")


ENCODED_KEYS = ("image/encoded", "image", "image_raw", "encoded", "jpeg", "png")


def _load_tfrecord(path: pathlib.Path) -> ImageSet:
    """Records holding tf.train.Examples with an encoded-image bytes feature (image/encoded as
    the TF Object Detection and TFDS exports write it), or the encoded bytes themselves."""
    import tensorflow as tf

    result = ImageSet([], os.fspath(path), "tfrecord")
    try:
        for i, record in enumerate(tf.data.TFRecordDataset(os.fspath(path)).as_numpy_iterator()):
            encoded = _encoded_image(record)
            try:
                result.images.append(images_lib.decode(encoded))
            except ValueError:
                result.skipped += 1
                result.skipped_examples.append(f"record {i}")
    except tf.errors.OpError as err:
        # "{{function_node __wrapped__IteratorGetNext...}} corrupted record at 0 [Op:...]"
        reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", err.message.splitlines()[0]).strip()
        raise SourceError(f"cannot read TFRecord {path}: {reason or type(err).__name__}") \
            from None
    return result


def _encoded_image(record: bytes) -> bytes:
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    try:
        example.ParseFromString(record)
    except Exception:  # noqa: BLE001 - not an Example: the record is the image itself
        return record
    features = example.features.feature
    for key in ENCODED_KEYS:
        if key in features and features[key].bytes_list.value:
            return features[key].bytes_list.value[0]
    for feature in features.values():
        if feature.bytes_list.value:
            return feature.bytes_list.value[0]
    return record


def expand(images: list[np.ndarray], count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` images drawn deterministically from `images`: each image whole first, then
    random crops (35-100% of the area, aspect 3/4-4/3) and horizontal flips."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        image = images[i % len(images)]
        rounds = i // len(images)
        if rounds == 0:
            out.append(image)
            continue
        h, w = image.shape[:2]
        area = rng.uniform(0.35, 1.0) * h * w
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch = int(min(h, round(np.sqrt(area / aspect))))
        cw = int(min(w, round(np.sqrt(area * aspect))))
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        crop = image[top:top + ch, left:left + cw]
        out.append(crop[:, ::-1] if rounds % 2 == 1 else crop)
    return out

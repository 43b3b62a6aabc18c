"""Box-preserving augmentation and batching for detection training, in numpy.

Every random choice comes from the np.random.Generator passed in, so a seed reproduces a run's
batches exactly. Boxes follow the package's convention (float32 normalized [ymin, xmin, ymax,
xmax]); crops are whole pixels, so a box on pixel edges stays on pixel edges.

The crop follows SSD's (Liu et al. 2016, and the TF OD API's ssd_random_crop): draw a minimum
coverage from (whole image, 0.1, 0.3, 0.5, 0.7, 0.9), then up to 50 patches of 10-100% of the
area with aspect 1/2-2, until one patch covers some object by at least that share (coverage:
the part of the object's box inside the patch). Objects whose box centre lies inside the patch
are kept with their boxes clipped to it; the others are dropped, so a kept box always bounds the
visible part of its object and no box remains for an object mostly cut away.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from tfmobile.detection.datasets import DatasetError, DetectionSample

SSD_MIN_COVERAGES = (None, 0.1, 0.3, 0.5, 0.7, 0.9)  # None: keep the whole image
PAD_CLASS = -1


def flip_horizontal(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mirrored image and its boxes (x -> 1 - x, so xmin and xmax swap)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    flipped = np.stack([boxes[:, 0], 1 - boxes[:, 3], boxes[:, 2], 1 - boxes[:, 1]], axis=1)
    return np.ascontiguousarray(image[:, ::-1]), flipped.astype(np.float32)


def random_flip(image, boxes, rng: np.random.Generator, probability: float = 0.5):
    if rng.random() < probability:
        return flip_horizontal(image, boxes)
    return image, np.asarray(boxes, np.float32).reshape(-1, 4)


def crop(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, top: int, left: int,
         height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixel window [top, top + height) x [left, left + width), with the objects whose box
    centre lies inside it (boxes clipped to it, renormalized) and no others."""
    h, w = image.shape[:2]
    if not (0 <= top and 0 <= left and height > 0 and width > 0 and top + height <= h
            and left + width <= w):
        raise ValueError(f"crop window top {top}, left {left}, {height}x{width} is not inside "
                         f"the {h}x{w} image")
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.asarray(classes, np.int32).reshape(-1)
    pixels = boxes.astype(np.float64) * np.array([h, w, h, w], np.float64)
    centre_y = (pixels[:, 0] + pixels[:, 2]) / 2
    centre_x = (pixels[:, 1] + pixels[:, 3]) / 2
    keep = ((centre_y >= top) & (centre_y < top + height)
            & (centre_x >= left) & (centre_x < left + width))
    window = np.array([top, left, top, left], np.float64)
    extent = np.array([height, width, height, width], np.float64)
    clipped = (np.clip(pixels[keep], window, window + extent) - window) / extent
    return (image[top:top + height, left:left + width], clipped.astype(np.float32),
            classes[keep])


def coverage(boxes: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """The share of each box's area inside a normalized window [ymin, xmin, ymax, xmax]."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    inter_h = np.clip(np.minimum(boxes[:, 2], window[2]) - np.maximum(boxes[:, 0], window[0]), 0, None)
    inter_w = np.clip(np.minimum(boxes[:, 3], window[3]) - np.maximum(boxes[:, 1], window[1]), 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter_h * inter_w / np.maximum(area, 1e-12)


def random_crop(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, rng: np.random.Generator,
                min_coverages: Sequence[float | None] = SSD_MIN_COVERAGES,
                area_range: tuple[float, float] = (0.1, 1.0),
                aspect_range: tuple[float, float] = (0.5, 2.0),
                max_trials: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SSD's random crop (module docstring). Returns (image, boxes, classes) unchanged when the
    drawn constraint is "whole image" or no patch meets it in max_trials. An image without
    objects takes the first patch drawn."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.asarray(classes, np.int32).reshape(-1)
    h, w = image.shape[:2]
    minimum = min_coverages[int(rng.integers(len(min_coverages)))]
    if minimum is None:
        return image, boxes, classes
    log_aspects = np.log(aspect_range)
    for _ in range(max_trials):
        area = rng.uniform(*area_range) * h * w
        aspect = float(np.exp(rng.uniform(*log_aspects)))  # width / height
        height = int(round(np.sqrt(area / aspect)))
        width = int(round(np.sqrt(area * aspect)))
        if not (1 <= height <= h and 1 <= width <= w):
            continue
        top = int(rng.integers(0, h - height + 1))
        left = int(rng.integers(0, w - width + 1))
        if not len(boxes):
            return crop(image, boxes, classes, top, left, height, width)
        window = (top / h, left / w, (top + height) / h, (left + width) / w)
        centre_y = (boxes[:, 0] + boxes[:, 2]) / 2
        centre_x = (boxes[:, 1] + boxes[:, 3]) / 2
        inside = ((centre_y >= window[0]) & (centre_y < window[2])
                  & (centre_x >= window[1]) & (centre_x < window[3]))
        if inside.any() and coverage(boxes[inside], window).max() >= minimum:
            return crop(image, boxes, classes, top, left, height, width)
    return image, boxes, classes


def resize(image: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The image stretched to size x size (bilinear, antialiased when shrinking); normalized
    boxes stay as they are."""
    from PIL import Image

    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if image.shape[:2] == (size, size):
        return image, boxes
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.BILINEAR)
    return np.asarray(resized), boxes


def to_network_input(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images as the zoo's networks take them: float32 in [-1, 1] (x / 127.5 - 1)."""
    return np.asarray(images, np.float32) / 127.5 - 1.0


def augment_sample(image, boxes, classes, rng: np.random.Generator):
    """The training augmentation: SSD random crop, then a horizontal flip half of the time."""
    image, boxes, classes = random_crop(image, boxes, classes, rng)
    image, boxes = random_flip(image, boxes, rng)
    return image, boxes, classes


def batches(dataset: Iterable[DetectionSample], input_size: int, batch_size: int,
            rng: np.random.Generator, augment: bool = True, max_boxes: int = 100,
            shuffle: bool | None = None, drop_remainder: bool = False
            ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """One pass over dataset as (images float32 [B, S, S, 3] in [-1, 1], boxes float32
    [B, max_boxes, 4] zero-padded, classes int32 [B, max_boxes] padded with -1, counts int32
    [B]). shuffle defaults to augment (training order random, evaluation order kept); the last
    batch is smaller unless drop_remainder. An image with more than max_boxes objects is an
    error: dropping objects would teach the network that they are background.
    """
    samples = list(dataset)
    order = np.arange(len(samples))
    if augment if shuffle is None else shuffle:
        order = rng.permutation(len(samples))
    stop = len(order) - len(order) % batch_size if drop_remainder else len(order)
    for start in range(0, stop, batch_size):
        chosen = [samples[i] for i in order[start:start + batch_size]]
        images = np.zeros((len(chosen), input_size, input_size, 3), np.uint8)
        boxes = np.zeros((len(chosen), max_boxes, 4), np.float32)
        classes = np.full((len(chosen), max_boxes), PAD_CLASS, np.int32)
        counts = np.zeros(len(chosen), np.int32)
        for row, sample in enumerate(chosen):
            image, sample_boxes, sample_classes = sample.image, sample.boxes, sample.classes
            if augment:
                image, sample_boxes, sample_classes = augment_sample(image, sample_boxes,
                                                                     sample_classes, rng)
            if len(sample_classes) > max_boxes:
                raise DatasetError(f"{sample.file or sample.image_id}: {len(sample_classes)} "
                                   f"objects but max_boxes is {max_boxes}; raise max_boxes")
            images[row], _ = resize(image, sample_boxes, input_size)
            counts[row] = len(sample_classes)
            boxes[row, :counts[row]] = sample_boxes
            classes[row, :counts[row]] = sample_classes
        yield to_network_input(images), boxes, classes, counts

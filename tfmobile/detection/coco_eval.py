"""Detection accuracy as the field reports it: COCO mAP computed by pycocotools.

Papers, the TF Object Detection API's model zoo and every detector's README quote the numbers
pycocotools prints, and its interpolation (101 recall points, precision made monotone, IoU
thresholds 0.50:0.05:0.95, area ranges in pixels of the original image) is what makes them
comparable. So nothing here computes an AP: this module only translates our convention
(normalized [ymin, xmin, ymax, xmax] boxes, 0-based class ids) into COCO's in memory, runs
COCOeval, and reads its arrays back into a plain dict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Hashable, Sequence

import numpy as np

# COCOeval.stats, in the order summarize() fills them.
STAT_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
             "ar_1", "ar_10", "ar_100", "ar_small", "ar_medium", "ar_large")


def _boxes(boxes, what: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float32)
    if array.size == 0:
        return np.zeros((0, 4), np.float32)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{what}: boxes must be [N, 4] (ymin, xmin, ymax, xmax), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what}: boxes hold NaN or infinity")
    return array


def _class_ids(classes, count: int, what: str) -> np.ndarray:
    """Integer class ids; float arrays are accepted when their values are whole, because
    TFLite_Detection_PostProcess returns its classes as float32."""
    array = np.asarray(classes).reshape(-1)
    if array.size != count:
        raise ValueError(f"{what}: {array.size} classes for {count} boxes")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(f"{what}: class ids must be whole numbers")
    return array.astype(np.int64)


@dataclasses.dataclass(frozen=True)
class ImageTruth:
    """One image's ground truth. height and width are the original image's, in pixels: COCO's
    small/medium/large ranges are areas in those pixels, not in the network's input."""

    image_id: Hashable
    height: int
    width: int
    boxes: np.ndarray    # [M, 4] float32, normalized ymin, xmin, ymax, xmax
    classes: np.ndarray  # [M] int, 0-based

    def __post_init__(self):
        what = f"ground truth of image {self.image_id!r}"
        if int(self.height) <= 0 or int(self.width) <= 0:
            raise ValueError(f"{what}: size {self.height}x{self.width} is not positive")
        boxes = _boxes(self.boxes, what)
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", _class_ids(self.classes, len(boxes), what))


@dataclasses.dataclass(frozen=True)
class ImageDetections:
    """A detector's output for one image, matched to its ImageTruth by image_id."""

    image_id: Hashable
    boxes: np.ndarray    # [K, 4] float32, normalized ymin, xmin, ymax, xmax
    classes: np.ndarray  # [K] int, 0-based
    scores: np.ndarray   # [K] float

    def __post_init__(self):
        what = f"detections of image {self.image_id!r}"
        boxes = _boxes(self.boxes, what)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if scores.size != len(boxes):
            raise ValueError(f"{what}: {scores.size} scores for {len(boxes)} boxes")
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"{what}: scores hold NaN or infinity")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", _class_ids(self.classes, len(boxes), what))
        object.__setattr__(self, "scores", scores)


def _xywh(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalized [ymin, xmin, ymax, xmax] to COCO's pixel [x, y, w, h] (float64: pycocotools
    computes in doubles, and float32 would move IoUs that sit on a threshold). An inverted box
    gets zero width rather than a negative one, which COCO's IoU does not expect."""
    b = boxes.astype(np.float64)
    x, y = b[:, 1] * width, b[:, 0] * height
    w = np.maximum(b[:, 3] - b[:, 1], 0.0) * width
    h = np.maximum(b[:, 2] - b[:, 0], 0.0) * height
    return np.stack([x, y, w, h], axis=1)


def _category_ids(class_names: Sequence[str], category_ids: Sequence[int] | None) -> list[int]:
    if len(set(class_names)) != len(class_names):
        raise ValueError("class_names repeat a name: per-class results are keyed by name")
    if category_ids is None:
        return list(range(1, len(class_names) + 1))
    ids = [int(i) for i in category_ids]
    if len(ids) != len(class_names):
        raise ValueError(f"{len(ids)} category ids for {len(class_names)} class names")
    if len(set(ids)) != len(ids):
        raise ValueError("category_ids repeat an id")
    return ids


def _check_classes(classes: np.ndarray, num_classes: int, what: str) -> None:
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(f"{what}: class ids must lie in [0, {num_classes}), got "
                         f"{int(classes.min())}..{int(classes.max())}")


def _stat(value: float) -> float | None:
    """pycocotools writes -1 where nothing could be measured (no ground truth in a size range,
    or none at all); None says that, where -1 would average into a report as a number."""
    return None if value < 0 else float(value)


def evaluate(ground_truth: Sequence[ImageTruth], detections: Sequence[ImageDetections],
             class_names: Sequence[str], category_ids: Sequence[int] | None = None) -> dict:
    """COCO box metrics of `detections` against `ground_truth`, computed by pycocotools.

    Every image of ground_truth is evaluated, boxes or not (detections on an image without
    ground truth are false positives); an image with no ImageDetections entry had no detections.
    category_ids, when given, are the dataset's own (COCO's sparse 1..90) ids for class 0, 1, ...;
    otherwise class c is category c + 1. They name categories inside COCO only: the result is
    keyed by class name.

    Returns a dict: map, map_50, map_75, map_small/medium/large, ar_1/ar_10/ar_100,
    ar_small/medium/large (floats in [0, 1], None where pycocotools has nothing to measure),
    per_class_ap50 ({class name: AP at IoU 0.5, all areas, 100 detections, or None for a class
    without ground truth}), the counts images, ground_truth_boxes and detections (all given, before
    pycocotools keeps each image's 100 best per class), and summary (pycocotools' printed lines).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not ground_truth:
        raise ValueError("no ground-truth images to evaluate on")
    cat_ids = _category_ids(class_names, category_ids)
    # pycocotools sorts image ids and matches results to them, so ours (file names, COCO ids)
    # become 1..N here and never reach it.
    coco_image = {}
    images, annotations = [], []
    for truth in ground_truth:
        if truth.image_id in coco_image:
            raise ValueError(f"image {truth.image_id!r} appears twice in the ground truth")
        coco_image[truth.image_id] = len(coco_image) + 1
        _check_classes(truth.classes, len(class_names), f"ground truth of image {truth.image_id!r}")
        images.append({"id": coco_image[truth.image_id], "height": truth.height, "width": truth.width})
        for xywh, cls in zip(_xywh(truth.boxes, truth.height, truth.width), truth.classes, strict=True):
            annotations.append({
                "id": len(annotations) + 1,  # COCOeval treats id 0 as "unmatched"
                "image_id": coco_image[truth.image_id], "category_id": cat_ids[cls],
                "bbox": xywh.tolist(), "area": float(xywh[2] * xywh[3]), "iscrowd": 0})
    categories = [{"id": cid, "name": name} for cid, name in zip(cat_ids, class_names, strict=True)]

    sizes = {truth.image_id: (truth.height, truth.width) for truth in ground_truth}
    results, seen = [], set()
    for dets in detections:
        if dets.image_id not in coco_image:
            raise ValueError(f"detections for image {dets.image_id!r}, which has no ground truth entry")
        if dets.image_id in seen:
            raise ValueError(f"image {dets.image_id!r} has two detection entries")
        seen.add(dets.image_id)
        _check_classes(dets.classes, len(class_names), f"detections of image {dets.image_id!r}")
        height, width = sizes[dets.image_id]
        for xywh, cls, score in zip(_xywh(dets.boxes, height, width), dets.classes, dets.scores,
                                    strict=True):
            results.append({"image_id": coco_image[dets.image_id], "category_id": cat_ids[cls],
                            "bbox": xywh.tolist(), "score": float(score)})

    printed = io.StringIO()  # pycocotools reports progress on stdout
    with contextlib.redirect_stdout(printed):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:
            # loadRes reads results[0]: an empty result set is built directly, and COCOeval then
            # scores it as it would any detector that finds nothing (AP 0, -1 where no truth).
            dt = COCO()
            dt.dataset = {"images": list(images), "annotations": [], "categories": categories}
            dt.createIndex()
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluation.summarize()

    result = {key: _stat(value) for key, value in zip(STAT_KEYS, evaluation.stats, strict=True)}
    result["per_class_ap50"] = _per_class_ap50(evaluation, cat_ids, class_names)
    result["images"] = len(images)
    result["ground_truth_boxes"] = len(annotations)
    result["detections"] = len(results)
    result["summary"] = summary.getvalue().splitlines()
    return result


def _per_class_ap50(evaluation, cat_ids: list[int], class_names: Sequence[str]) -> dict:
    """AP at IoU 0.5 per class, read from COCOeval's precision array [T, R, K, A, M] the way its
    summarize() reads the overall one (mean over recall thresholds of the values > -1)."""
    params = evaluation.params
    precision = evaluation.eval["precision"]
    iou = int(np.argmin(np.abs(np.asarray(params.iouThrs) - 0.5)))
    area = list(params.areaRngLbl).index("all")
    max_dets = list(params.maxDets).index(100)
    per_class = {}
    for cid, name in zip(cat_ids, class_names, strict=True):
        k = list(params.catIds).index(cid)
        values = precision[iou, :, k, area, max_dets]
        values = values[values > -1]
        per_class[name] = float(np.mean(values)) if values.size else None
    return per_class


def summary_lines(result: dict) -> list[str]:
    """pycocotools' own 12-line summary of an evaluate() result, for a CLI's --verbose: the
    layout people recognise from every COCO paper's appendix and detector log."""
    return list(result["summary"])

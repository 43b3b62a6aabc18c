"""Labelled image folders (one subfolder per class), as train.py and evaluate.py read them."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from calibration import images as images_lib
from calibration.preprocess import Preprocessing


class DataError(ValueError):
    """The folder is missing or holds no labelled image."""


@dataclasses.dataclass
class LabelledImages:
    images: list[np.ndarray]  # HxWx3 uint8
    labels: np.ndarray  # int
    class_names: list[str]
    skipped: int = 0

    def batch(self, input_size: int) -> np.ndarray:
        """Evaluation preprocessing: resize shorter side, centre crop, scale to [-1, 1].
        Kept per size: evaluating a float and an int8 model reuses it."""
        cache = self.__dict__.setdefault("_batches", {})
        if input_size not in cache:
            cache[input_size] = Preprocessing(input_size).batch(self.images)
        return cache[input_size]


def load_folder(root, class_names: list[str] | None = None) -> LabelledImages:
    """Every decodable image under root/<class>/ (recursively). `class_names` fixes the label
    order (a validation folder must use the training folder's)."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory of class folders")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if class_names is None:
        class_names = found
    if not class_names:
        raise DataError(f"{root} has no class subfolders (expected {root}/<class>/<image>)")
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise DataError(f"{root} has classes the model was not trained on: {', '.join(unknown[:5])}")
    images, labels, skipped = [], [], 0
    for label, name in enumerate(class_names):
        folder = root / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() not in images_lib.IMAGE_SUFFIXES:
                continue
            try:
                images.append(images_lib.decode(path))
            except ValueError:
                skipped += 1
                continue
            labels.append(label)
    if not images:
        raise DataError(f"{root} holds no decodable image in its class folders")
    return LabelledImages(images, np.array(labels), list(class_names), skipped)


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray) -> dict:
    order = np.argsort(-logits, axis=1)
    k = min(5, logits.shape[1])
    return {
        "top1": float(np.mean(order[:, 0] == labels)),
        f"top{k}": float(np.mean([label in row[:k] for row, label in zip(order, labels)])),
    }

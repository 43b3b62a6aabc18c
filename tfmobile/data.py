"""Labelled image folders (one subfolder per class), as train.py and evaluate.py read them."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from calibration import images as images_lib
from calibration.preprocess import Preprocessing
from tfmobile_core.records import parse_json


class DataError(ValueError):
    """The folder is missing or holds no labelled image."""


@dataclasses.dataclass
class LabelledImages:
    images: list[np.ndarray]  # HxWx3 uint8
    labels: np.ndarray  # int
    class_names: list[str]
    skipped: int = 0

    def counts(self) -> list[int]:
        """Images per class, in class order (0 for a class with no folder or no image)."""
        return np.bincount(self.labels, minlength=len(self.class_names)).tolist()

    def batch(self, input_size: int) -> np.ndarray:
        """Evaluation preprocessing: resize shorter side, centre crop, scale to [-1, 1].
        Kept per size: evaluating a float and an int8 model reuses it."""
        cache = self.__dict__.setdefault("_batches", {})
        if input_size not in cache:
            cache[input_size] = Preprocessing(input_size).batch(self.images)
        return cache[input_size]


WEIGHTS_SUFFIX = ".weights.h5"


def class_names_path(weights) -> pathlib.Path:
    """Where tfmobile.train keeps the class order of `<name>.weights.h5`: `<name>.classes.json`."""
    weights = pathlib.Path(weights)
    return weights.with_name(weights.name.removesuffix(WEIGHTS_SUFFIX) + ".classes.json")


def read_class_names(weights) -> list[str] | None:
    """The class order saved beside trained weights, or None where there is none (published
    or random weights). DataError when the file is there but is not a list of distinct
    names."""
    if not str(weights).endswith(WEIGHTS_SUFFIX):
        return None
    path = class_names_path(weights)
    if not path.is_file():
        return None
    try:
        names = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read the class order {path}: {err}") from None
    if (not isinstance(names, list) or not names
            or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names)
            or any(n in (".", "..") or "/" in n or "\0" in n for n in names)):  # folder names
        raise DataError(f"{path} must be a JSON list of distinct class names, as tfmobile.train "
                        "writes it")
    return names


def load_folder(root, class_names: list[str] | None = None) -> LabelledImages:
    """Every decodable image under root/<class>/ (recursively). `class_names` fixes the label
    order (a validation folder must use the training folder's)."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory of class folders")
    # Hidden folders (.ipynb_checkpoints, .git) are not classes: they would add outputs.
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
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
        f"top{k}": float(np.mean([label in row[:k] for row, label in zip(order, labels, strict=True)])),
    }

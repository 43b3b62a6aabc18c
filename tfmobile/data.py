"""Labelled images, as train.py and evaluate.py read them.

Three layouts (train reads the first; evaluate tells them apart by themselves):

- class folders: root/<class>/<image>. ILSVRC2012's train set, and its validation set sorted
  into one folder per synset (n01440764/...), are this layout.
- a folder of images and a ground-truth file (`read_ground_truth`): lines `<file> <label>`
  (caffe's val.txt) or Kaggle's LOC_val_solution.csv.
- a flat folder whose file names carry the class (`file_name_label`): a synset ID
  (n01440764_tench.JPEG, ILSVRC2012_val_00000001_n01751748.JPEG) or a class index at the end
  (foolbox's imagenet_00_243.jpg).

ImageNet labels (class indices in the standard 0-based order, or synset IDs) are kept as synset
IDs and placed by the model's class names: a 1001-class model (background first) has its
indices shifted by one, and any model whose classes are synsets labels right.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import numpy as np

from calibration import images as images_lib
from calibration.preprocess import Preprocessing
from tfmobile import imagenet
from tfmobile_core.records import parse_json


class DataError(ValueError):
    """The folder is missing or holds no labelled image."""


@dataclasses.dataclass
class LabelledImages:
    images: list[np.ndarray]  # HxWx3 uint8
    labels: np.ndarray  # int
    class_names: list[str]
    skipped: int = 0
    layout: str = "class folders"
    unlabelled: int = 0  # images of the folder its labels file does not name
    not_found: int = 0  # labels-file entries naming no image of the folder

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

    def chunks(self, sizes):
        """(labels, {input size: preprocessed images}): all at once, they are decoded already."""
        yield self.labels, {size: self.batch(size) for size in sizes}


@dataclasses.dataclass
class LabelledFiles:
    """Labelled image files, decoded a chunk at a time as they are evaluated: ImageNet's 50,000
    validation images take ~30 GB decoded."""
    paths: list[pathlib.Path]
    labels: np.ndarray  # int, one per path
    class_names: list[str]
    layout: str = "class folders"
    unlabelled: int = 0
    not_found: int = 0
    skipped: int = 0  # undecodable: known once chunks() has read them

    def chunks(self, sizes, chunk: int = 64):
        """(labels, {input size: preprocessed images}) of each chunk's decodable images."""
        self.skipped = 0
        for start in range(0, len(self.paths), chunk):
            images, labels = [], []
            for path, label in zip(self.paths[start:start + chunk],
                                   self.labels[start:start + chunk], strict=True):
                try:
                    images.append(images_lib.decode(path))
                except ValueError:
                    self.skipped += 1
                    continue
                labels.append(label)
            if images:
                yield np.array(labels), {size: Preprocessing(size).batch(images) for size in sizes}


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


def class_folders(root) -> list[str]:
    """The sorted class subfolders of root. Hidden folders (.ipynb_checkpoints, .git) are not
    classes: they would add outputs."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory of class folders")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def loose_images(root) -> list[pathlib.Path]:
    """The image files directly in root (not in subfolders), sorted; hidden ones left out
    (macOS writes ._<name>.JPEG beside every image it copies)."""
    return sorted(p for p in pathlib.Path(root).iterdir()
                  if p.suffix.lower() in images_lib.IMAGE_SUFFIXES and not p.name.startswith(".")
                  and p.is_file())


def list_folder(root, class_names: list[str] | None = None) -> LabelledFiles:
    """Every image file under root/<class>/ (recursively), not yet decoded. `class_names` fixes
    the label order (a validation folder must use the training folder's)."""
    root = pathlib.Path(root)
    found = class_folders(root)
    if class_names is None:
        class_names = found
    if not class_names:
        raise DataError(f"{root} has no class subfolders (expected {root}/<class>/<image>)")
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise DataError(f"{root} has classes the model was not trained on: {', '.join(unknown[:5])}")
    paths, labels = [], []
    for label, name in enumerate(class_names):
        folder = root / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in images_lib.IMAGE_SUFFIXES:
                paths.append(path)
                labels.append(label)
    if not paths:
        raise DataError(f"{root} holds no decodable image in its class folders")
    return LabelledFiles(paths, np.array(labels, dtype=int), list(class_names))


def load_folder(root, class_names: list[str] | None = None) -> LabelledImages:
    """Every decodable image under root/<class>/ (recursively), decoded. `class_names` fixes
    the label order (a validation folder must use the training folder's)."""
    listed = list_folder(root, class_names)
    images, labels, skipped = [], [], 0
    for path, label in zip(listed.paths, listed.labels, strict=True):
        try:
            images.append(images_lib.decode(path))
        except ValueError:
            skipped += 1
            continue
        labels.append(label)
    if not images:
        raise DataError(f"{root} holds no decodable image in its class folders")
    return LabelledImages(images, np.array(labels), listed.class_names, skipped)


# --- ImageNet labels: in the standard order, as synset IDs --------------------------------------

SYNSET = re.compile(r"n\d{8}")
_SYNSET_IN_NAME = re.compile(r"(?<![A-Za-z0-9])n\d{8}(?![0-9])")
# foolbox's <set>_<nn>_<label>: a class index ends the name; no leading zero, so that
# ILSVRC2012_val_00000001 (an image number) is no class 1.
_INDEX_AT_END = re.compile(r"(?P<prefix>.+)_(?P<index>0|[1-9]\d*)")
_FOOLBOX_NAME = re.compile(r"(?P<set>[^_]+)_\d+_\d+")  # <set>_<nn>_<label>
# The other sample sets foolbox ships beside its ImageNet ones: their labels are no ImageNet class.
NOT_IMAGENET = ("cifar10", "cifar100", "mnist", "fashionmnist")
FILE_NAMES_HELP = ("name each file with its synset ID (n01440764_tench.JPEG) or end it with its "
                   "class index 0-999 (foolbox's imagenet_00_243.jpg), or give --labels FILE")


def imagenet_label(token: str) -> str:
    """The synset ID of a label: a class index 0-999 in the standard order (as caffe's val.txt
    and foolbox write them), or a synset ID. ValueError otherwise."""
    if token.isdigit() and token.isascii():
        index = int(token)
        if index >= len(imagenet.synsets()):
            raise ValueError(f"class index {token} is outside the standard 0-based order "
                             f"(0-{len(imagenet.synsets()) - 1})")
        return imagenet.synsets()[index]
    if SYNSET.fullmatch(token):
        return token
    raise ValueError(f"label {token!r} is neither a class index (0-999) nor a synset ID "
                     "(n01440764)")


def file_name_label(name: str) -> tuple[str, str] | None:
    """("synset" or "index", the synset ID) a file name carries, or None. A synset ID anywhere
    in the name (n01440764_tench.JPEG, ILSVRC2012_val_00000001_n01751748.JPEG) wins; otherwise
    a class index 0-999 ending it (imagenet_00_243.jpg: 243)."""
    stem = pathlib.PurePath(name).stem
    found = set(_SYNSET_IN_NAME.findall(stem))
    if len(found) == 1:
        return "synset", found.pop()
    if found:
        return None  # two synsets: no telling which
    match = _INDEX_AT_END.fullmatch(stem)
    if match and int(match["index"]) < len(imagenet.synsets()):
        return "index", imagenet.synsets()[int(match["index"])]
    return None


def labels_from_file_names(root) -> dict[str, str]:
    """{file name: synset ID} of the images directly in root, every one labelled by its name
    the same way; DataError, naming an example, for names that carry no class or mix kinds."""
    root = pathlib.Path(root)
    paths = loose_images(root)
    labels, kinds, unreadable = {}, {}, []
    for path in paths:
        found = file_name_label(path.name)
        if found is None:
            unreadable.append(path.name)
            continue
        kinds.setdefault(found[0], path.name)
        labels[path.name] = found[1]
    if unreadable:
        more = f" (nor do {len(unreadable) - 1} more of its {len(paths)})" if len(unreadable) > 1 else ""
        raise DataError(f"{root}: the file name {unreadable[0]} carries no ImageNet class{more}; "
                        f"{FILE_NAMES_HELP}")
    if len(kinds) > 1:
        raise DataError(f"{root} mixes file names labelled by synset ID ({kinds['synset']}) and "
                        f"by class index ({kinds['index']}); {FILE_NAMES_HELP}")
    if "index" in kinds:  # foolbox's folder holds CIFAR and MNIST samples named the same way
        sets = {}
        for name in labels:
            foolbox = _FOOLBOX_NAME.fullmatch(pathlib.PurePath(name).stem)
            if foolbox:
                sets.setdefault(foolbox["set"].lower(), name)
        if len(sets) > 1 or set(sets) & set(NOT_IMAGENET):
            examples = ", ".join(sorted(sets.values())[:4])
            raise DataError(f"{root} holds images of other sets than ImageNet, named like "
                            f"foolbox's samples ({examples}): their class index is no ImageNet "
                            "class; point --data at a folder of ImageNet images only")
    return labels


def read_ground_truth(path) -> dict[str, str]:
    """{file name: synset ID} from a ground-truth file: lines `<file> <label>` (whitespace or
    comma separated, label a class index in the standard 0-based order or a synset ID, as
    caffe's val.txt), or Kaggle's LOC_val_solution.csv (ImageId without extension,
    PredictionString starting with the synset). DataError, one line, for anything else; the
    ILSVRC2012 devkit's bare numbers are refused, their order is not the standard one."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise DataError(f"cannot read --labels {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise DataError(f"--labels {path} is not a text file") from None
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"--labels {path} is empty")
    kaggle = lines[0][1].replace(" ", "").lower() == "imageid,predictionstring"
    if not kaggle and all(line.isdigit() for _, line in lines):
        raise DataError(
            f"--labels {path} holds one number per line, as the ILSVRC2012 devkit's "
            "ILSVRC2012_validation_ground_truth.txt does: its IDs follow the devkit's meta.mat, "
            "not the standard class order, and name no file; give lines `<file name> <label>` "
            "(caffe's val.txt) or Kaggle's LOC_val_solution.csv")
    truth = {}
    for number, line in lines[1:] if kaggle else lines:
        if kaggle:
            name, _, prediction = line.partition(",")
            fields = [name.strip(), (prediction.split() or [""])[0]]
        else:
            fields = re.split(r"[\s,]+", line)
        if len(fields) != 2 or not fields[0]:
            raise DataError(f"--labels {path}, line {number}: expected `<file name> <label>`, got "
                            f"{line[:80]!r}")
        try:
            label = imagenet_label(fields[1])
        except ValueError as err:
            if number == lines[0][0] and not any(c.isdigit() for c in fields[1]):
                continue  # a header (file,label)
            raise DataError(f"--labels {path}, line {number}: {err}") from None
        if truth.setdefault(fields[0], label) != label:
            raise DataError(f"--labels {path}, line {number}: {fields[0]} is labelled twice, "
                            f"{truth[fields[0]]} and {label}")
    if not truth:
        raise DataError(f"--labels {path} labels no file")
    return truth


def image_files(root) -> list[pathlib.Path]:
    """Every image file under root, recursively, sorted; hidden files and folders left out."""
    root = pathlib.Path(root)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in images_lib.IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(root).parts)
                  and p.is_file())


def describe_classes(class_names: list[str]) -> str:
    if all(SYNSET.fullmatch(n) for n in class_names if n != imagenet.BACKGROUND):
        return "ImageNet synsets"
    return ", ".join(class_names[:5]) + (", ..." if len(class_names) > 5 else "")


def list_labelled(root, truth: dict[str, str], class_names: list[str], *, layout: str,
                  source) -> LabelledFiles:
    """The images of root that `truth` ({file: synset ID}, from `source`) labels, placed by
    `class_names`. A name in `truth` is the image's path under root, with or without its
    extension (Kaggle's ImageIds have none). Names without image and images without name are
    counted; DataError when none meet, or a label names a class the model lacks."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a directory")
    files = image_files(root)
    by_name = {}
    for path in files:
        relative = path.relative_to(root).as_posix()
        by_name[relative] = path
        by_name.setdefault(relative.rsplit(".", 1)[0], path)
    index = {name: i for i, name in enumerate(class_names)}
    matched, not_found = {}, 0
    for name, synset in truth.items():
        path = by_name.get(name.strip("/"))
        if path is None:
            not_found += 1
            continue
        if synset not in index:
            unknown = sum(s not in index for s in truth.values())
            raise DataError(f"{source} labels {unknown} images with classes the model does not have "
                            f"(e.g. {synset} for {name}); the model's classes: "
                            f"{describe_classes(class_names)}")
        matched[path] = index[synset]
    if not matched:
        example = next(iter(truth))
        raise DataError(f"none of the {len(truth)} files {source} names is an image of {root} "
                        f"(it names e.g. {example}; "
                        + (f"{root} holds e.g. {files[0].relative_to(root).as_posix()})"
                           if files else f"{root} holds no image)"))
    paths = sorted(matched)
    return LabelledFiles(paths, np.array([matched[p] for p in paths], dtype=int), list(class_names),
                         layout=layout, unlabelled=len(files) - len(matched), not_found=not_found)


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray) -> dict:
    order = np.argsort(-logits, axis=1)
    k = min(5, logits.shape[1])
    return {
        "top1": float(np.mean(order[:, 0] == labels)),
        f"top{k}": float(np.mean([label in row[:k] for row, label in zip(order, labels, strict=True)])),
    }

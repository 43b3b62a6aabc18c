"""Top-1 / top-5 accuracy of a Keras zoo model or a .tflite on labelled images, with 95%
confidence intervals; and, against a reference model on the same images, the paired statistics
that tell a real change (an int8 model's loss) from the noise of a small set.

  python -m tfmobile.evaluate --model mobilenet_v2 --alpha 0.5 --input_size 96 \\
      --weights artifacts/mnv2.weights.h5 --data photos/val
  python -m tfmobile.evaluate --tflite artifacts/mobilenet_v2_0.5_96_c14_int8.tflite --data photos/val
  python -m tfmobile.evaluate --tflite mnv1_int8.tflite --reference mnv1_float.tflite \\
      --data imagenet/val --labels imagenet/val.txt
  python -m tfmobile.evaluate --tflite artifacts/mobilenet_v2_0.5_96_c14_int8.tflite \\
      --model mobilenet_v2 --alpha 0.5 --input_size 96 --weights artifacts/mnv2.weights.h5 \\
      --reference keras --data photos/val

--data is told apart by itself:
  - one subfolder per class (photos/val/cat/1.jpg); ILSVRC2012 sorted into one folder per synset
    (val/n01440764/...) is this layout;
  - a flat folder plus --labels FILE: lines `<file name> <label>`, whitespace or comma
    separated, the label a class index in the standard 0-based 1000-class order (caffe's
    val.txt) or a synset ID (n01440764); or Kaggle's LOC_val_solution.csv. The ILSVRC2012
    devkit's bare numbers are refused: their order is not the standard one;
  - a flat folder whose file names carry the class: a synset ID (n01440764_tench.JPEG,
    ILSVRC2012_val_00000001_n01751748.JPEG), or a class index 0-999 ending the name, as foolbox
    names its samples (imagenet_00_243.jpg).

The labels are the class order the model was trained with: a .tflite made by tfmobile.convert
carries it (embedded, and in its report), a Keras model's --weights keep it beside them
(<name>.classes.json, written by tfmobile.train). A folder the model has no class for is an
error; a class with no folder is left out and named. ImageNet labels (class indices, synset IDs)
are placed by the model's class names; a model that carries none but has 1000 outputs, or 1001
with TF-slim's background class first, takes ImageNet's standard order. Any other model without
a class order takes the folder's sorted subfolder names, whose number must equal its outputs.

--reference (a float .tflite, or `keras` for the --model/--weights network, --tflite then being
the model compared) runs both models on the same images. Printed: each model's top-1 and top-5
with Wilson score intervals; the top-1 change in points with its 95% interval (Newcombe's
method for paired proportions); the images that flipped each way; McNemar's exact p-value (a
change with p >= 0.05 cannot be told from noise); and top-1 agreement, the share of images both
models give the same class (it needs no labels). --json gives fractions (0-1).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import statistics

import numpy as np
from absl import flags

from tfmobile import model_flags
from tfmobile_core import cli

ORDER_TEXT = {"model": "the model's", "weights": "the weights'", "folders": "the folders'",
              "imagenet": "ImageNet's standard"}
Z95 = statistics.NormalDist().inv_cdf(0.975)
KERAS_REFERENCE = "keras"  # --reference keras: the --model/--weights network


# --- Statistics -----------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion: unlike p +- z*se, it stays inside [0, 1] and
    keeps its coverage at 0/n, n/n and small n."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0/n and n/n the bound is exactly 0 or 1 (rounding would leave 1e-17).
    return (0.0 if successes == 0 else max(0.0, centre - half),
            1.0 if successes == n else min(1.0, centre + half))


def paired_difference_interval(both: int, only_first: int, only_second: int, neither: int,
                               z: float = Z95) -> tuple[float, float]:
    """Interval of p1 - p2 for two proportions measured on the same items (Newcombe 1998,
    method 10: the two Wilson intervals squared and added, less their correlation). Counts:
    items right for both, for the first only, the second only, neither. Unpaired intervals
    would be far wider: most images are right or wrong for both models alike."""
    n = both + only_first + only_second + neither
    if n == 0:
        return -1.0, 1.0
    p1, p2 = (both + only_first) / n, (both + only_second) / n
    (l1, u1), (l2, u2) = wilson_interval(both + only_first, n, z), wilson_interval(both + only_second, n, z)
    margins = ((both + only_first) * (only_second + neither) * (both + only_second)
               * (only_first + neither))
    phi = 0.0
    if margins:  # the correlation of the two, continuity-corrected towards 0 as Newcombe's
        excess = both * neither - only_first * only_second
        phi = (excess - n / 2 if excess > n / 2 else min(excess, 0)) / math.sqrt(margins)
    difference = p1 - p2
    lower = difference - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
                                       + (u2 - p2) ** 2))
    upper = difference + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)
                                       + (u1 - p1) ** 2))
    return max(-1.0, lower), min(1.0, upper)


def mcnemar_exact_p(only_first: int, only_second: int) -> float:
    """McNemar's exact two-sided p-value: under no change, each discordant item (right for one
    model only) is either way with probability 1/2; the binomial tail of the smaller count,
    doubled."""
    n, k = only_first + only_second, min(only_first, only_second)
    term, tail = 1, 0  # comb(n, i), exactly: integers
    for i in range(k + 1):
        tail += term
        term = term * (n - i) // (i + 1)
    return min(1.0, tail / 2 ** (n - 1)) if n else 1.0


# --- Running the models ---------------------------------------------------------------------------


@dataclasses.dataclass
class Classifier:
    """A model to evaluate: what it is called, the class order it carries (or None), its width
    (None: a Keras model that takes the folders'), and how it scores a preprocessed batch."""
    what: str
    class_names: list[str] | None
    outputs: int | None
    order: str  # ORDER_TEXT key, when its class names are the ones used
    input_size: int
    scores: object = None  # batch -> logits; a Keras model is built once the classes are known


def tflite_scores(interpreter):
    from converters import litert

    return lambda batch: litert.run(interpreter, batch)


def keras_scores(model):
    return lambda batch: model.predict(batch, verbose=0, batch_size=32)


def predictions(classifiers, labelled, progress=None):
    """(labels, [top-k classes per image, per classifier]) over the decodable images: read
    a chunk at a time, each chunk scored by every classifier."""
    k = min(5, min(c.outputs for c in classifiers))
    labels, tops, seen = [], [[] for _ in classifiers], 0
    total = len(getattr(labelled, "paths", labelled.labels))
    bar = progress(None, total, "evaluating") if progress else None
    for chunk_labels, batches in labelled.chunks(sorted({c.input_size for c in classifiers})):
        seen += len(chunk_labels)
        for i, classifier in enumerate(classifiers):
            logits = classifier.scores(batches[classifier.input_size])
            bad = int(np.sum(~np.isfinite(logits).all(axis=1)))
            if bad:  # the model is broken: its accuracy would be made up
                raise cli.UsageError(
                    f"{classifier.what} gives NaN or infinite scores on {bad} of {seen} images"
                    + (" read so far" if seen < total else "")
                    + ": the model is broken (weights from a training run that diverged?)")
            tops[i].append(np.argsort(-logits, axis=1, kind="stable")[:, :k])
        labels.append(chunk_labels)
        if bar is not None:  # undecodable images count as read
            bar.update(seen + getattr(labelled, "skipped", 0) - bar.n)
    if bar is not None:
        bar.close()
    if not labels:
        raise cli.UsageError(f"none of the {total} images could be decoded")
    return np.concatenate(labels), [np.concatenate(t) for t in tops]


def accuracy(top: np.ndarray, labels: np.ndarray) -> dict:
    """top-1 and top-k (k = min(5, classes)) with their 95% Wilson intervals."""
    n, k = len(labels), top.shape[1]
    right1, rightk = int(np.sum(top[:, 0] == labels)), int(np.sum((top == labels[:, None]).any(axis=1)))
    return {"top1": right1 / n, f"top{k}": rightk / n, "top1_ci": list(wilson_interval(right1, n)),
            f"top{k}_ci": list(wilson_interval(rightk, n))}


def paired(top: np.ndarray, reference_top: np.ndarray, labels: np.ndarray) -> dict:
    """The model against the reference on the same images."""
    right, reference_right = top[:, 0] == labels, reference_top[:, 0] == labels
    both = int(np.sum(right & reference_right))
    gained = int(np.sum(right & ~reference_right))
    lost = int(np.sum(~right & reference_right))
    neither = len(labels) - both - gained - lost
    agree = int(np.sum(top[:, 0] == reference_top[:, 0]))
    return {
        "top1_difference": (gained - lost) / len(labels),  # model minus reference
        "top1_difference_ci": list(paired_difference_interval(both, gained, lost, neither)),
        "reference_right_model_wrong": lost,
        "reference_wrong_model_right": gained,
        "mcnemar_p": mcnemar_exact_p(gained, lost),
        "top1_agreement": agree / len(labels),
        "top1_agreement_ci": list(wilson_interval(agree, len(labels))),
    }


def evaluate(classifier: Classifier, labelled) -> dict:
    labels, (top,) = predictions([classifier], labelled)
    result = accuracy(top, labels)
    return {key: value for key, value in result.items() if not key.endswith("_ci")} | {
        "images": len(labels)}


def evaluate_keras(model, labelled) -> dict:
    size = int(model.input_shape[1])
    return evaluate(Classifier(model.name, None, int(model.output_shape[-1]), "model", size,
                               keras_scores(model)), labelled)


def evaluate_tflite(model, labelled) -> dict:
    """`model`: .tflite bytes or path, or an interpreter already allocated."""
    from converters import litert

    interpreter = model if hasattr(model, "invoke") else litert.load(model)
    size = int(interpreter.get_input_details()[0]["shape"][1])
    outputs = int(interpreter.get_output_details()[0]["shape"][1])
    return evaluate(Classifier("the .tflite model", None, outputs, "model", size,
                               tflite_scores(interpreter)), labelled)


# --- The models and the data ----------------------------------------------------------------------


def tflite_classifier(path: str, flag: str = "--tflite"):
    """(interpreter, class names or None) of a .tflite image classifier; UsageError, one line,
    for a file that is missing, damaged, or not a batch-1 RGB classifier. `flag`: the option
    that named it, for the messages."""
    from converters import litert
    from tfmobile_core.records import METADATA_NAME, ArtifactId, RecordError

    try:
        content = pathlib.Path(path).read_bytes()
    except OSError as err:
        raise cli.UsageError(f"cannot read {flag} {path}: {err.strerror}") from None
    try:
        litert.check_model(content, f"{flag} {path}")
        interpreter = litert.load(content)
    except litert.NotAModel as err:
        raise cli.UsageError(str(err)) from None
    except (ValueError, RuntimeError) as err:
        raise cli.UsageError(f"LiteRT cannot load {flag} {path}: "
                             f"{' '.join(str(err).split()) or type(err).__name__}") from None
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    shape = [int(d) for d in inputs[0]["shape"]] if len(inputs) == 1 else None
    if shape is None or len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or shape[1] != shape[2]:
        raise cli.UsageError(f"{flag} {path} is not an image classifier of one square RGB "
                             f"input (its inputs: {[list(d['shape']) for d in inputs]})")
    signature = [int(d) for d in inputs[0].get("shape_signature", inputs[0]["shape"])]
    if min(signature[1:3]) < 1:  # allocated at 1 x 1: every image would shrink to one pixel
        raise cli.UsageError(f"{flag} {path} takes images of any size (input {signature}); "
                             "evaluate a model converted with a fixed input size")
    if len(outputs) != 1 or len(outputs[0]["shape"]) != 2:
        raise cli.UsageError(f"{flag} {path} is not a classifier with one output of class "
                             f"scores (its outputs: {[list(d['shape']) for d in outputs]})")
    for role, detail in (("input", inputs[0]), ("output", outputs[0])):
        dtype, (scale, _) = np.dtype(detail["dtype"]), detail["quantization"]
        if dtype != np.float32 and not (dtype in (np.int8, np.uint8) and scale > 0):
            raise cli.UsageError(
                f"{flag} {path}: its {role} is {dtype.name}"
                + (" without a quantization scale" if dtype in (np.int8, np.uint8) else "")
                + "; evaluate takes float32 or quantized int8/uint8 models (as tfmobile.convert "
                "writes them), whose values it can map to and from [-1, 1] images and scores")
    class_names = None
    stored = litert.read_metadata(content, METADATA_NAME)
    if stored is not None:
        try:
            class_names = ArtifactId.from_json(stored).model.class_names
        except RecordError as err:
            raise cli.UsageError(f"{flag} {path} carries a damaged tfmobile record ({err})") \
                from None
    width = int(outputs[0]["shape"][1])
    if class_names is not None and len(class_names) != width:
        raise cli.UsageError(f"{flag} {path} names {len(class_names)} classes but has "
                             f"{width} outputs")
    return interpreter, None if class_names is None else list(class_names)


def tflite_side(path: str, flag: str, verbose: bool) -> Classifier:
    with cli.native_output_silenced(not verbose):
        interpreter, class_names = tflite_classifier(path, flag)
    return Classifier(path, class_names, int(interpreter.get_output_details()[0]["shape"][1]),
                      "model", int(interpreter.get_input_details()[0]["shape"][1]),
                      tflite_scores(interpreter))


def common_classes(classifiers: list[Classifier]) -> tuple[list[str] | None, int | None, str]:
    """The class names, width and order every classifier shares; UsageError when they differ:
    a paired comparison of two class orders would count every image as flipped."""
    named = [c for c in classifiers if c.class_names is not None]
    if len(named) == 2 and named[0].class_names != named[1].class_names:
        first, second = named[0].class_names, named[1].class_names
        where = next((i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
                     min(len(first), len(second)))
        raise cli.UsageError(
            f"{named[0].what} and {named[1].what} name different classes ({len(first)} and "
            f"{len(second)}; class {where}: "
            f"{first[where] if where < len(first) else '-'} vs "
            f"{second[where] if where < len(second) else '-'}); compare models of one class order")
    widths = {c.what: c.outputs for c in classifiers if c.outputs is not None}
    if named:
        widths.setdefault(named[0].what, len(named[0].class_names))
    if len(set(widths.values())) > 1:
        raise cli.UsageError("the models have different numbers of classes ("
                             + ", ".join(f"{what}: {n}" for what, n in widths.items())
                             + "); compare models of one class order")
    names = named[0].class_names if named else None
    return names, next(iter(widths.values()), None), named[0].order if named else "folders"


def labelled_for(data_dir: str, labels_file: str | None, class_names, outputs: int | None,
                 order: str, model_text: str):
    """(the labelled images in the model's class order, the order's ORDER_TEXT key); UsageError
    when the two disagree. `outputs`: the model's width, to check the folders against when it
    has no class order."""
    from tfmobile import data, imagenet

    def imagenet_names(source: str):
        if class_names is not None:
            return class_names, order
        names = imagenet.class_names(1000 if outputs is None else outputs)
        if names is None:
            raise cli.UsageError(
                f"{source} labels ImageNet classes, and {model_text} has {outputs} outputs and "
                "no class order of its own to place them by; evaluate a model of ImageNet's "
                "1000 classes (or 1001, background first) or one that names its classes")
        return names, "imagenet"

    try:
        if labels_file:
            truth = data.read_ground_truth(labels_file)
            names, order = imagenet_names(f"--labels {labels_file}")
            return data.list_labelled(data_dir, truth, names, layout="labels file",
                                      source=f"--labels {labels_file}"), order
        folders = data.class_folders(data_dir)
        if folders or not data.loose_images(data_dir):
            names = class_names
            if (names is None and outputs in (1000, 1001) and folders
                    and all(data.SYNSET.fullmatch(f) for f in folders)):
                names, order = imagenet.class_names(outputs), "imagenet"  # ILSVRC2012's folders
            labelled = data.list_folder(data_dir, names)
        else:
            names, order = imagenet_names(f"{data_dir}'s file names")
            return data.list_labelled(data_dir, data.labels_from_file_names(data_dir), names,
                                      layout="file names", source=data_dir), order
    except data.DataError as err:
        raise cli.UsageError(str(err)) from None
    if names is None:
        order = "folders"
        if outputs is not None and len(labelled.class_names) != outputs:
            raise cli.UsageError(
                f"{data_dir} has {len(labelled.class_names)} class folders and {model_text} has "
                f"{outputs} outputs, with no class order of its own to match them by; evaluate "
                "a model converted from tfmobile.train's weights (it carries its classes)")
    return labelled, order


# --- The command ----------------------------------------------------------------------------------


def interval(bounds, scale: float = 100, signed: bool = False) -> str:
    form = "+.1f" if signed else ".1f"
    return f"95% CI {bounds[0] * scale:{form}} to {bounds[1] * scale:{form}}"


def accuracy_text(result: dict) -> str:
    topk = next(k for k in result if k.startswith("top") and k != "top1" and not k.endswith("_ci"))
    return (f"top-1 {result['top1']:.1%} ({interval(result['top1_ci'])}%), "
            f"{topk.replace('top', 'top-')} {result[topk]:.1%} ({interval(result[topk + '_ci'])}%)")


def summary(result: dict, data_dir: str, labels_file: str | None) -> list[str]:
    """The text output: a few lines."""
    missing = result["classes_without_images"]
    lines = [f"{result['model']}: {accuracy_text(result)} on {result['images']} images of "
             f"{result['classes']} classes (class order: {ORDER_TEXT[result['class_order']]})"
             + (f"; no images of {len(missing)} of its classes: {', '.join(missing[:5])}"
                if missing and result["layout"] == "class folders" else "")]
    left = [f"{count} {text}" for count, text in (
        (result["skipped"], "undecodable images"),
        (result["unlabelled_images"], f"images of {data_dir} that --labels does not name"),
        (result["labels_without_image"], f"files --labels {labels_file} names that are not in "
                                         f"{data_dir}")) if count]
    if left:
        lines.append("not evaluated: " + "; ".join(left))
    if "reference" in result:
        pair = result["paired"]
        lines.append(f"{result['reference']['model']} (reference): {accuracy_text(result['reference'])}")
        p = pair["mcnemar_p"]
        verdict = (f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}") + (
            ": significant at 5%" if p < 0.05 else ": not significant at 5%, within noise")
        lines.append(
            f"top-1 change {100 * pair['top1_difference']:+.1f} points "
            f"({interval(pair['top1_difference_ci'], signed=True)}); flipped "
            f"{pair['reference_right_model_wrong']} right -> wrong, "
            f"{pair['reference_wrong_model_right']} wrong -> right (McNemar exact {verdict}); "
            f"top-1 agreement {pair['top1_agreement']:.1%} "
            f"({interval(pair['top1_agreement_ci'])}%)")
    return lines


def main(argv):
    from tfmobile import imagenet
    from tfmobile import models as models_lib

    del argv
    FLAGS = flags.FLAGS
    keras_reference = FLAGS.reference == KERAS_REFERENCE
    if keras_reference:
        if not (FLAGS.tflite and FLAGS.model):
            raise cli.UsageError("--reference keras compares --tflite with the Keras network of "
                                 "--model (and --weights): give both")
    elif bool(FLAGS.tflite) == bool(FLAGS.model):
        raise cli.UsageError("give either --model (a Keras zoo model) or --tflite PATH")
    if FLAGS.tflite and not keras_reference:  # a .tflite is built and trained already
        ignored = [name for name in ("weights", "drop_background", "alpha", "input_size", "num_classes",
                                     *models_lib.all_variants()) if FLAGS[name].present]
        if ignored:
            raise cli.UsageError(f"--{ignored[0]} applies to --model only; a --tflite model "
                                 "carries its own architecture and weights")
    for flag in ("tflite", "reference", "labels"):
        value = FLAGS[flag].value
        if value and not (flag == "reference" and keras_reference) and not pathlib.Path(value).is_file():
            raise cli.UsageError(f"--{flag} {value!r} does not exist")
    from tfmobile.detection import commands as detection_commands

    if (model_flags.is_detector(FLAGS.model)
            or FLAGS.tflite and detection_commands.is_detector_file(FLAGS.tflite)):
        return detection_commands.evaluate_main(FLAGS)
    if FLAGS.draw:
        raise cli.UsageError("--draw applies to detectors")
    identity = model_flags.identity_from_flags(FLAGS) if FLAGS.model else None

    # The models' classes and the data are checked before TensorFlow loads (seconds), which
    # only a Keras model needs: LiteRT runs the .tflite models.
    classifiers = []
    if FLAGS.tflite:
        classifiers.append(tflite_side(FLAGS.tflite, "--tflite", FLAGS.verbose))
    if FLAGS.model:  # its width: --num_classes, the weights' classes, or ImageNet's published
        outputs = (identity.num_classes if FLAGS.num_classes is not None or identity.class_names
                   else 1000 if FLAGS.weights == "imagenet" else None)
        keras_side = Classifier(f"{FLAGS.model} ({FLAGS.weights or 'random init'})",
                                None if identity.class_names is None else list(identity.class_names),
                                outputs, "weights", identity.input_size)
        classifiers.append(keras_side)
    if FLAGS.reference and not keras_reference:
        classifiers.append(tflite_side(FLAGS.reference, "--reference", FLAGS.verbose))
    names, outputs, order = common_classes(classifiers)
    model_text = " and ".join(c.what for c in classifiers)
    labelled, order = labelled_for(FLAGS.data, FLAGS.labels, names, outputs, order, model_text)
    if FLAGS.model:
        cli.quiet_tensorflow(FLAGS.verbose)
        model = model_flags.build_model(FLAGS.model, weights=FLAGS.weights,
                                        classifier_activation=None,
                                        **{**identity.build_args(),
                                           "num_classes": len(labelled.class_names)})
        keras_side.scores, keras_side.outputs = keras_scores(model), len(labelled.class_names)

    with cli.native_output_silenced(not FLAGS.verbose) as console:
        labels, tops = predictions(classifiers, labelled, cli.progress_bar(console))
    counts = np.bincount(labels, minlength=len(labelled.class_names))
    # A 1001-class model's background class has no images, as expected: not worth a mention.
    expected_empty = {imagenet.BACKGROUND} if labelled.class_names == imagenet.class_names(1001) else set()
    missing = [name for name, count in zip(labelled.class_names, counts, strict=True)
               if not count and name not in expected_empty]
    result = {"model": classifiers[0].what, **accuracy(tops[0], labels), "images": len(labels),
              "skipped": labelled.skipped, "classes": int(np.sum(counts > 0)),
              "classes_without_images": missing, "class_order": order, "layout": labelled.layout,
              "unlabelled_images": labelled.unlabelled, "labels_without_image": labelled.not_found}
    if len(classifiers) == 2:
        result["reference"] = {"model": classifiers[1].what, **accuracy(tops[1], labels)}
        result["paired"] = paired(tops[0], tops[1], labels)
    if FLAGS.json:
        print(json.dumps(result))
    else:
        print("\n".join(summary(result, FLAGS.data, FLAGS.labels)))


if __name__ == "__main__":
    model_flags.define_model_flags(required=False)
    flags.DEFINE_string("tflite", None, "A .tflite model to evaluate instead of --model.")
    model_flags.define_weights_flags("--model's weights (.weights.h5 from tfmobile.train, or "
                                     "'imagenet').")
    flags.DEFINE_string("data", None, "Labelled images: a folder with one subfolder per class "
                        "(ILSVRC2012: one per synset), a flat folder with --labels, or a flat "
                        "folder whose file names carry the class (n01440764_tench.JPEG, "
                        "imagenet_00_243.jpg). Detectors (mAP through pycocotools): a COCO "
                        ".json, a VOC folder, a .tfrecord, or 'composed'.")
    flags.DEFINE_string("labels", None, "Ground truth of a flat --data folder: lines `<file name> "
                        "<label>`, the label a class index in the standard 0-based order (caffe's "
                        "val.txt) or a synset ID; or Kaggle's LOC_val_solution.csv.")
    flags.DEFINE_string("reference", None, "A float model to compare with on the same images: a "
                        ".tflite, or `keras` for the --model/--weights network (--tflite being "
                        "the model compared). Adds the top-1 change with its 95% interval, the "
                        "images flipped each way, McNemar's exact p and top-1 agreement.")
    flags.DEFINE_string("draw", None, "Detectors: a folder for PNGs of the first images' "
                        "detections, each model's side by side, the ground truth dashed.")
    flags.DEFINE_string("images", None, "Detectors: the folder of a COCO --data file's images "
                        "(default: the folder named like the .json, else beside it).")
    flags.DEFINE_boolean("json", False, "Print one JSON object (accuracies as fractions).")
    flags.DEFINE_boolean("verbose", False, "Show TensorFlow's own logging.")
    flags.mark_flag_as_required("data")
    cli.run(main)

"""Top-1 / top-5 accuracy of a Keras zoo model or a .tflite on a folder of labelled images.

  python -m tfmobile.evaluate --model mobilenet_v2 --alpha 0.5 --input_size 96 \
      --weights artifacts/mnv2.weights.h5 --data photos/val
  python -m tfmobile.evaluate --tflite artifacts/mobilenet_v2_0.5_96_c14_int8.tflite --data photos/val

The labels are the class order the model was trained with: a .tflite made by tfmobile.convert
carries it (embedded, and in its report), a Keras model's --weights keep it beside them
(<name>.classes.json, written by tfmobile.train). A folder the model has no class for is an
error; a class with no folder is left out and named. Only for a model that carries no class
order are the folder's sorted subfolder names taken, and then their number must equal the
model's outputs.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from absl import flags

from tfmobile import model_flags
from tfmobile_core import cli


ORDER_TEXT = {"model": "the model's", "weights": "the weights'", "folders": "the folders'"}


def evaluate_keras(model, labelled) -> dict:
    from tfmobile import data

    logits = model.predict(labelled.batch(model.input_shape[1]), verbose=0, batch_size=32)
    check_scores(logits, model.name)
    return {**data.top_k_accuracy(logits, labelled.labels), "images": len(labelled.labels)}


def evaluate_tflite(model, labelled) -> dict:
    """`model`: .tflite bytes or path, or an interpreter already allocated."""
    from converters import litert
    from tfmobile import data

    interpreter = model if hasattr(model, "invoke") else litert.load(model)
    size = int(interpreter.get_input_details()[0]["shape"][1])
    logits = litert.run(interpreter, labelled.batch(size))
    check_scores(logits, "the .tflite model")
    return {**data.top_k_accuracy(logits, labelled.labels), "images": len(labelled.labels)}


def check_scores(logits, what: str) -> None:
    """UsageError when a model's scores are NaN or infinite: its accuracy would be made up."""
    bad = int(np.sum(~np.isfinite(logits).all(axis=1)))
    if bad:
        raise cli.UsageError(f"{what} gives NaN or infinite scores on {bad} of {len(logits)} "
                             "images: the model is broken (weights from a training run that "
                             "diverged?)")


def tflite_classifier(path: str):
    """(interpreter, class names or None) of a .tflite image classifier; UsageError, one line,
    for a file that is missing, damaged, or not a batch-1 RGB classifier."""
    from converters import litert
    from tfmobile_core.records import METADATA_NAME, ArtifactId, RecordError

    try:
        content = pathlib.Path(path).read_bytes()
    except OSError as err:
        raise cli.UsageError(f"cannot read --tflite {path}: {err.strerror}") from None
    try:
        litert.check_model(content, f"--tflite {path}")
        interpreter = litert.load(content)
    except litert.NotAModel as err:
        raise cli.UsageError(str(err)) from None
    except (ValueError, RuntimeError) as err:
        raise cli.UsageError(f"LiteRT cannot load --tflite {path}: "
                             f"{' '.join(str(err).split()) or type(err).__name__}") from None
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    shape = [int(d) for d in inputs[0]["shape"]] if len(inputs) == 1 else None
    if shape is None or len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or shape[1] != shape[2]:
        raise cli.UsageError(f"--tflite {path} is not an image classifier of one square RGB "
                             f"input (its inputs: {[list(d['shape']) for d in inputs]})")
    signature = [int(d) for d in inputs[0].get("shape_signature", inputs[0]["shape"])]
    if min(signature[1:3]) < 1:  # allocated at 1 x 1: every image would shrink to one pixel
        raise cli.UsageError(f"--tflite {path} takes images of any size (input {signature}); "
                             "evaluate a model converted with a fixed input size")
    if len(outputs) != 1 or len(outputs[0]["shape"]) != 2:
        raise cli.UsageError(f"--tflite {path} is not a classifier with one output of class "
                             f"scores (its outputs: {[list(d['shape']) for d in outputs]})")
    for role, detail in (("input", inputs[0]), ("output", outputs[0])):
        dtype, (scale, _) = np.dtype(detail["dtype"]), detail["quantization"]
        if dtype != np.float32 and not (dtype in (np.int8, np.uint8) and scale > 0):
            raise cli.UsageError(
                f"--tflite {path}: its {role} is {dtype.name}"
                + (" without a quantization scale" if dtype in (np.int8, np.uint8) else "")
                + "; evaluate takes float32 or quantized int8/uint8 models (as tfmobile.convert "
                "writes them), whose values it can map to and from [-1, 1] images and scores")
    class_names = None
    stored = litert.read_metadata(content, METADATA_NAME)
    if stored is not None:
        try:
            class_names = ArtifactId.from_json(stored).model.class_names
        except RecordError as err:
            raise cli.UsageError(f"--tflite {path} carries a damaged tfmobile record ({err})") \
                from None
    width = int(outputs[0]["shape"][1])
    if class_names is not None and len(class_names) != width:
        raise cli.UsageError(f"--tflite {path} names {len(class_names)} classes but has "
                             f"{width} outputs")
    return interpreter, class_names


def labelled_for(data_dir: str, class_names, outputs: int | None, model_text: str):
    """The labelled folder in the model's class order; UsageError when the two disagree.
    `outputs`: the model's width, to check the folders against when it has no class order."""
    from tfmobile import data

    try:
        labelled = data.load_folder(data_dir, class_names)
    except data.DataError as err:
        raise cli.UsageError(str(err)) from None
    if class_names is None and outputs is not None and len(labelled.class_names) != outputs:
        raise cli.UsageError(
            f"{data_dir} has {len(labelled.class_names)} class folders and {model_text} has "
            f"{outputs} outputs, with no class order of its own to match them by; evaluate "
            "a model converted from tfmobile.train's weights (it carries its classes)")
    return labelled


def main(argv):
    from tfmobile import models as models_lib

    del argv
    FLAGS = flags.FLAGS
    if bool(FLAGS.tflite) == bool(FLAGS.model):
        raise cli.UsageError("give either --model (a Keras zoo model) or --tflite PATH")
    if FLAGS.tflite:  # a .tflite is built and trained already: flags that would say how, do not
        ignored = [name for name in ("weights", "alpha", "input_size", "num_classes",
                                     *models_lib.all_variants()) if FLAGS[name].present]
        if ignored:
            raise cli.UsageError(f"--{ignored[0]} applies to --model only; a --tflite model "
                                 "carries its own architecture and weights")
    if FLAGS.tflite and not pathlib.Path(FLAGS.tflite).is_file():
        raise cli.UsageError(f"--tflite {FLAGS.tflite!r} does not exist")
    identity = None if FLAGS.tflite else model_flags.identity_from_flags(FLAGS)  # no TF yet
    cli.quiet_tensorflow(FLAGS.verbose)

    if FLAGS.tflite:
        with cli.native_output_silenced(not FLAGS.verbose):
            interpreter, class_names = tflite_classifier(FLAGS.tflite)
        outputs = int(interpreter.get_output_details()[0]["shape"][1])
        labelled = labelled_for(FLAGS.data, class_names, outputs, FLAGS.tflite)
        with cli.native_output_silenced(not FLAGS.verbose):
            result = evaluate_tflite(interpreter, labelled)
        what, order = FLAGS.tflite, "model" if class_names else "folders"
    else:
        labelled = labelled_for(FLAGS.data, identity.class_names, None, FLAGS.model)
        order = "weights" if identity.class_names else "folders"
        model = model_flags.build_model(FLAGS.model, weights=FLAGS.weights,
                                        classifier_activation=None,
                                        **{**identity.build_args(),
                                           "num_classes": len(labelled.class_names)})
        result = evaluate_keras(model, labelled)
        what = f"{FLAGS.model} ({FLAGS.weights or 'random init'})"
    missing = [name for name, count in zip(labelled.class_names, labelled.counts(), strict=True) if not count]
    result.update(skipped=labelled.skipped, classes=len(labelled.class_names) - len(missing),
                  classes_without_images=missing, class_order=order)
    if FLAGS.json:
        print(json.dumps(result))
    else:
        top5 = next(k for k in result if k.startswith("top") and k != "top1")
        print(f"{what}: top-1 {result['top1']:.1%}, {top5.replace('top', 'top-')} "
              f"{result[top5]:.1%} on {result['images']} images of {result['classes']} classes "
              f"(class order: {ORDER_TEXT[order]})"
              + (f"; no images of {len(missing)} of its classes: {', '.join(missing[:5])}"
                 if missing else ""))


if __name__ == "__main__":
    model_flags.define_model_flags(required=False)
    flags.DEFINE_string("tflite", None, "A .tflite model to evaluate instead of --model.")
    flags.DEFINE_string("weights", None, "--model's weights (.weights.h5 from tfmobile.train).")
    flags.DEFINE_string("data", None, "Labelled images: a folder with one subfolder per class.")
    flags.DEFINE_boolean("json", False, "Print one JSON object.")
    flags.DEFINE_boolean("verbose", False, "Show TensorFlow's own logging.")
    flags.mark_flag_as_required("data")
    cli.run(main)

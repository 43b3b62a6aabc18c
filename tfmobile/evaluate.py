"""Top-1 / top-5 accuracy of a Keras zoo model or a .tflite on a folder of labelled images.

  python -m tfmobile.evaluate --model mobilenet_v2 --alpha 0.5 --input_size 96 \
      --weights artifacts/mnv2.weights.h5 --data photos/val
  python -m tfmobile.evaluate --tflite artifacts/mobilenet_v2_0.5_96_int8.tflite --data photos/val

Class order comes from the training run's <weights>.classes.json, else the folder's sorted
subfolder names (as tfmobile.train numbers them).
"""

from __future__ import annotations

import json
import pathlib

from absl import flags

from tfmobile import cli


def evaluate_keras(model, labelled) -> dict:
    from tfmobile import data

    logits = model.predict(labelled.batch(model.input_shape[1]), verbose=0, batch_size=32)
    return {**data.top_k_accuracy(logits, labelled.labels), "images": len(labelled.labels)}


def evaluate_tflite(content_or_path, labelled) -> dict:
    from converters import litert
    from tfmobile import data

    interpreter = litert.load(content_or_path)
    size = int(interpreter.get_input_details()[0]["shape"][1])
    logits = litert.run(interpreter, labelled.batch(size))
    return {**data.top_k_accuracy(logits, labelled.labels), "images": len(labelled.labels)}


def _class_names(weights: str | None):
    """The class order tfmobile.train saved beside the weights, if any."""
    classes = pathlib.Path(weights.replace(".weights.h5", ".classes.json")) if weights else None
    return json.loads(classes.read_text()) if classes and classes.is_file() else None


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    if bool(FLAGS.tflite) == bool(FLAGS.model):
        raise cli.UsageError("give either --model (a Keras zoo model) or --tflite PATH")
    if FLAGS.tflite and not pathlib.Path(FLAGS.tflite).is_file():
        raise cli.UsageError(f"--tflite {FLAGS.tflite!r} does not exist")
    cli.quiet_tensorflow(FLAGS.verbose)
    from tfmobile import data

    try:
        labelled = data.load_folder(FLAGS.data, _class_names(FLAGS.weights))
    except data.DataError as err:
        raise cli.UsageError(str(err)) from None
    if FLAGS.tflite:
        with cli.native_output_silenced(not FLAGS.verbose):
            result = evaluate_tflite(FLAGS.tflite, labelled)
        what = FLAGS.tflite
    else:
        args = cli.model_args(FLAGS)
        args["num_classes"] = len(labelled.class_names)
        model = cli.build_model(FLAGS.model, weights=FLAGS.weights, classifier_activation=None,
                                **args)
        result = evaluate_keras(model, labelled)
        what = f"{FLAGS.model} ({FLAGS.weights or 'random init'})"
    result["skipped"] = labelled.skipped
    if FLAGS.json:
        print(json.dumps(result))
    else:
        top5 = next(k for k in result if k.startswith("top") and k != "top1")
        print(f"{what}: top-1 {result['top1']:.1%}, {top5.replace('top', 'top-')} "
              f"{result[top5]:.1%} on {result['images']} images")


if __name__ == "__main__":
    cli.define_model_flags(required=False)
    flags.DEFINE_string("tflite", None, "A .tflite model to evaluate instead of --model.")
    flags.DEFINE_string("weights", None, "--model's weights (.weights.h5 from tfmobile.train).")
    flags.DEFINE_string("data", None, "Labelled images: a folder with one subfolder per class.")
    flags.DEFINE_boolean("json", False, "Print one JSON object.")
    flags.DEFINE_boolean("verbose", False, "Show TensorFlow's own logging.")
    flags.mark_flag_as_required("data")
    cli.run(main)

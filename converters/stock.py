"""The stock conversion: what a user gets without tfmobile, for side-by-side benchmarks.

The network comes from keras.applications (the registry's `keras_application` of the zoo entry:
MobileNet V1, V2, V3 Large and Small) and goes through the path TensorFlow's own guide shows:
`TFLiteConverter.from_keras_model`, and for int8 `Optimize.DEFAULT` with a representative
dataset, `TFLITE_BUILTINS_INT8` and int8 input/output. No graph rewrite, no range tightening.
The calibration images are the same as ours (the embedded photographs, the same preprocessing),
so the two models differ only in how they were built and converted.

Writes `stock_<stem>.tflite` and a JSON report beside it (network, MACs, the conversion path,
the graph facts including how LiteRT executes it), so the benchmark harness can put the stock
model in the same tables as ours.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

PATH = "keras.applications -> TFLiteConverter.from_keras_model (the stock path)"
PREFIX = "stock_"


def available() -> list[str]:
    """The zoo names with a keras.applications equivalent."""
    from tfmobile import models

    return [name for name in models.available() if models.entry(name).keras_application]


def stem(name: str, model_args: dict, mode: str) -> str:
    """stock_mobilenet_v3_small_1_224_int8: the zoo artifact's stem, prefixed."""
    from tfmobile.artifacts import artifact_stem

    return PREFIX + artifact_stem(name, model_args, mode)


def convert_keras_model(model, mode: str, calibration: np.ndarray) -> bytes:
    """The stock conversion of a Keras model (no SavedModel detour, no rewrites)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def convert(name: str, model_args: dict, mode: str, out_dir: pathlib.Path, *,
            calibration_samples: int = 300, verbose: bool = False) -> pathlib.Path:
    """Builds keras.applications' `name` (random weights), converts it the stock way and writes
    `<out_dir>/stock_<stem>.tflite` and its report atomically; returns the .tflite path.

    Raises ValueError for a network without a keras.applications equivalent or a bad mode, and
    tfmobile.artifacts.ConversionError when the converter fails.
    """
    from calibration import sources
    from calibration.preprocess import Preprocessing
    from converters import pipeline, report
    from tfmobile import atomic, cli, models
    from tfmobile.artifacts import ConversionError
    from tfmobile.profile import profile

    if mode not in pipeline.MODES:
        raise ValueError(f"mode must be one of {', '.join(pipeline.MODES)}, got {mode!r}")
    if name not in available():
        raise ValueError(f"{name} has no keras.applications equivalent; stock: takes "
                         f"{', '.join(available())}")
    args = {"alpha": 1.0, "input_size": 224, **model_args}
    build_args = dict(alpha=args["alpha"], input_size=args["input_size"],
                      num_classes=args.get("num_classes", 1000), include_top=True, weights=None)
    variants = {k: v for k, v in args.items() if k not in ("alpha", "input_size", "num_classes")}
    # Ours, built with the same arguments, gives the operation count (same architecture:
    # tests/test_keras_equivalence.py checks them layer for layer).
    ours = models.build(name, **build_args, **variants)
    # Logits, as the zoo models the converter writes give.
    application = models.entry(name).keras_application(**build_args, **variants,
                                                       classifier_activation=None)

    started = time.perf_counter()
    calibration = None
    if mode == "int8":
        images, _ = sources.load(None).split()
        picked, _ = pipeline.draw(images, calibration_samples, seed=0)
        calibration = Preprocessing(args["input_size"]).batch(picked)
    try:
        with cli.native_output_silenced(not verbose):
            content = convert_keras_model(application, mode, calibration)
    except Exception as err:  # noqa: BLE001 - the converter fails in many ways; say which
        raise ConversionError((str(err).strip().splitlines() or [type(err).__name__])[-1]) from err
    seconds = time.perf_counter() - started

    stats = profile(ours)
    result = {
        "model": {"name": name, **args, "source": f"keras.applications.{application.name}",
                  "weights": "random init", "params": stats.params, "macs": stats.macs},
        "conversion": {"mode": mode, "path": PATH, "seconds": round(seconds, 2)},
        "artifact": report.graph_facts(content),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{stem(name, args, mode)}.tflite"
    result["artifact"]["path"] = str(target)
    atomic.write_bytes(target, content)
    atomic.write_json(target.with_suffix(".json"), result)
    return target

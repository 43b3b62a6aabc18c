"""Keras model -> .tflite bytes, through a SavedModel with a fixed batch-1 signature.

A fixed batch keeps every shape static, so the graph has no SHAPE / STRIDED_SLICE / PACK ops
computing a batch size at run time, which LiteRT delegates and the Edge TPU reject.
"""

from __future__ import annotations

import tempfile

import keras
import tensorflow as tf

FLOAT_MODES = ("float32", "float16", "dynamic")


def export_saved_model(model: keras.Model, path: str, batch_size: int = 1) -> None:
    """Keras's ExportArchive tracks Keras 3 variables so the converter can freeze them (a plain
    tf.Module leaves them as resource variables: VAR_HANDLE ops and garbage outputs)."""
    spec = tf.TensorSpec((batch_size, *model.input_shape[1:]), tf.float32, name="image")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", lambda image: model(image, training=False), input_signature=[spec]
    )
    archive.write_out(path, verbose=False)


def convert_float(model: keras.Model, mode: str = "float32") -> bytes:
    """float32; float16 weights; or dynamic range (int8 weights, float activations)."""
    if mode not in FLOAT_MODES:
        raise ValueError(f"mode must be one of {', '.join(FLOAT_MODES)}, got {mode!r}")
    with tempfile.TemporaryDirectory(prefix="tfmobile-savedmodel-") as saved:
        export_saved_model(model, saved)
        return convert_saved_model(saved, mode)


def convert_saved_model(saved_model_dir: str, mode: str = "float32") -> bytes:
    """A float mode of convert_float, from an already exported SavedModel."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    if mode in ("float16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()

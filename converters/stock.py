"""The stock conversion: what a user gets without tfmobile, for side-by-side benchmarks.

The network comes from keras.applications (the registry's `keras_application` of the zoo entry:
MobileNet V1, V2, V3 Large and Small) and goes through the path TensorFlow's own guide shows:
`TFLiteConverter.from_keras_model`, and for int8 `Optimize.DEFAULT` with a representative
dataset, `TFLITE_BUILTINS_INT8` and int8 input/output. No graph rewrite, no range tightening.
The calibration images are the same as ours (the embedded photographs, the same preprocessing),
so the two models differ only in how they were built and converted.

tfmobile.artifacts.convert_stock builds the network and writes the model with its report, so
the benchmark harness can put the stock model in the same tables as ours.
"""

from __future__ import annotations

import numpy as np

PATH = "TFLiteConverter.from_keras_model (the stock path)"


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

"""Test helpers."""

import json
import math
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np


def randomize(model: keras.Model, seed: int = 0) -> keras.Model:
    """LeCun-scaled random kernels (std 1/sqrt(fan_in)) and random batch-norm statistics.

    Freshly built networks carry Keras's Glorot initialisation, which shrinks the signal at
    every depthwise layer until the logits are ~1e-20; comparisons on such outputs prove
    nothing. He scaling (sqrt(2/fan_in)) overshoots the other way through residual adds and SE
    gates (logits up to 1e5). With these weights every zoo network gives logits of 0.5-15 on
    the photographs, like a trained one, and every weight (BN statistics too) affects them.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c),
            ])
        elif layer.weights:
            kernel, *rest = layer.get_weights()
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                fan_in = math.prod(kernel.shape[:2])
            else:
                fan_in = math.prod(kernel.shape[:-1])
            values = [rng.normal(0, 1 / math.sqrt(fan_in), kernel.shape)]
            values += [rng.normal(0, 0.1, w.shape) for w in rest]
            layer.set_weights(values)
    return model


def as_compiled_for_edgetpu(content: bytes) -> bytes:
    """An int8 .tflite as edgetpu_compiler leaves one: every op but the last replaced by a
    single edgetpu-custom-op (with empty code: only an Edge TPU could run it), the last op
    left to the CPU, and the model's metadata gone (it "does not survive the edgetpu-compiler",
    ultralytics/yolov5#9903; tensorflow/tflite-support#916 copies it back by hand)."""
    from ai_edge_litert import schema_py_generated as schema

    from converters import litert

    model = litert.read_model(content)
    graph = model.subgraphs[0]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = "edgetpu-custom-op", 1
    model.operatorCodes.append(code)
    custom = schema.OperatorT()
    custom.opcodeIndex = len(model.operatorCodes) - 1
    custom.inputs, custom.outputs = list(graph.inputs), [graph.operators[-1].inputs[0]]
    custom.customOptions = list(b"stand-in")
    graph.operators = [custom, graph.operators[-1]]
    model.metadata = [m for m in model.metadata or [] if m.name == b"min_runtime_version"]
    return litert.write_model(model)


def bench(*args, env=None, timeout=600, cwd=None) -> subprocess.CompletedProcess:
    """`python -m android_bench ARGS` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "android_bench", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout, cwd=cwd)


def records(path: pathlib.Path) -> list:
    """The benchmark results store's records, read back as the typed records they are."""
    from tfmobile_core.records import BenchmarkRecord

    return [BenchmarkRecord.from_json(json.loads(line)) for line in path.read_text().splitlines()]


def table(directory: pathlib.Path, target: str, suffix: str = ".md") -> pathlib.Path:
    """The comparison file of `target` (one configuration) in `directory`."""
    import re

    prefix = re.sub(r"[^A-Za-z0-9-]+", "_", target).strip("_") + "_"
    (found,) = [p for p in directory.glob(f"*{suffix}") if p.name.startswith(prefix)
                and "fd_mobilenet_paper" not in p.name]
    return found


def mnist_cnn() -> keras.Model:
    """The CNN behind the published mnist4 / mnist9 logs (same layers and shapes)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(32, 5, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 5, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(1024, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def nrf20_graph(directory: pathlib.Path, io_type) -> bytes:
    """The published nrf20 MNIST CNN's graph built the way its quant_8.py built it
    (from_saved_model of a SavedModel with an unknown batch, TFLITE_BUILTINS_INT8, the given
    I/O type), with other weights: conv 5x5x32 / pool / conv 5x5x32 / pool / reshape to 1568 /
    dense 1024 / dense 10 / softmax."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w = [tf.constant(rng.normal(0, 0.1, shape).astype(np.float32)) for shape in
         [(5, 5, 1, 32), (32,), (5, 5, 32, 32), (32,), (1568, 1024), (1024,), (1024, 10), (10,)]]

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
    def serve(x):
        x = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, w[0], 1, "SAME") + w[1]), 2, 2, "VALID")
        x = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, w[2], 1, "SAME") + w[3]), 2, 2, "VALID")
        x = tf.reshape(x, [-1, 7 * 7 * 32])
        x = tf.nn.relu(tf.matmul(x, w[4]) + w[5])
        return tf.nn.softmax(tf.matmul(x, w[6]) + w[7])

    saved = directory / f"saved_{io_type.name if io_type else 'float'}"
    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, str(saved), signatures=serve)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [np.random.default_rng(i).uniform(0, 1, (1, 28, 28, 1)).astype(np.float32)]
        for i in range(2))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io_type is not None:
        converter.inference_input_type = converter.inference_output_type = io_type
    return converter.convert()

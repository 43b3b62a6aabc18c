"""Test helpers."""

import math

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

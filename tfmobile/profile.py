"""Per-layer parameters and multiply-accumulates of a Keras model.

MACs count conv, depthwise and dense layers only (H_out * W_out * k * k * C_in / groups * C_out),
the convention of the MobileNet and ShuffleNet papers: batch norm, activations, pooling,
additions and SE multiplies are left out. "conv+dense weights" likewise leaves out batch norm.
Pooling windows are counted apart (`pool_ops`): some papers' FLOPs include them (ShuffleNet V2's
counts are reproduced with them, see the tests).
"""

from __future__ import annotations

import dataclasses
import math

import keras

from tfmobile.models.blocks import PaddedAveragePool


@dataclasses.dataclass(frozen=True)
class LayerStats:
    name: str
    kind: str
    output_shape: tuple
    params: int  # every weight, batch-norm statistics included
    trainable_params: int  # what frameworks that keep BN statistics apart report as params
    weights: int  # conv and dense kernels and biases only
    macs: int
    pool_ops: int  # window elements read by pooling layers


@dataclasses.dataclass(frozen=True)
class ModelStats:
    layers: tuple[LayerStats, ...]

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def pool_ops(self) -> int:
        return sum(layer.pool_ops for layer in self.layers)


COUNTED = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def _macs(layer, output_shape) -> int:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, c_in, multiplier = layer.kernel.shape
        return math.prod(output_shape[1:3]) * kh * kw * c_in * multiplier
    if isinstance(layer, keras.layers.Conv2D):  # kernel (kh, kw, C_in / groups, C_out)
        return math.prod(output_shape[1:-1]) * math.prod(layer.kernel.shape)
    if isinstance(layer, keras.layers.Dense):
        return math.prod(output_shape[1:-1]) * math.prod(layer.kernel.shape)
    return 0


def _pool_ops(layer, output_shape) -> int:
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        return math.prod(output_shape[1:]) * math.prod(layer.pool_size)
    if isinstance(layer, PaddedAveragePool):
        return math.prod(output_shape[1:]) * layer.pool_size**2
    if isinstance(layer, keras.layers.GlobalAveragePooling2D):
        return math.prod(layer.input.shape[1:])
    return 0


def _shape(layer) -> tuple:
    out = layer.output
    return tuple(out[0].shape if isinstance(out, (list, tuple)) else out.shape)


def profile(model: keras.Model) -> ModelStats:
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shape = _shape(layer)
        counted = isinstance(layer, COUNTED)
        rows.append(
            LayerStats(
                name=layer.name,
                kind=type(layer).__name__,
                output_shape=shape,
                params=layer.count_params(),
                trainable_params=sum(math.prod(w.shape) for w in layer.trainable_weights),
                weights=layer.count_params() if counted else 0,
                macs=_macs(layer, shape),
                pool_ops=_pool_ops(layer, shape),
            )
        )
    return ModelStats(tuple(rows))


def summarize(name: str, **build_args) -> dict:
    """The figures `--json` prints, for tests and other tools."""
    from tfmobile import models

    model = models.build(name, **build_args)
    stats = profile(model)
    return {
        "model": name,
        **build_args,
        "params": stats.params,
        "trainable_params": stats.trainable_params,
        "weights": stats.weights,
        "macs": stats.macs,
        "pool_ops": stats.pool_ops,
        "layers": [
            {
                "name": layer.name,
                "type": layer.kind,
                "output_shape": list(layer.output_shape[1:]),
                "params": layer.params,
                "macs": layer.macs,
            }
            for layer in stats.layers
        ],
    }

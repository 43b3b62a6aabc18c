"""Weights: porting between structurally equivalent models, and loading published ones."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from tfmobile.models.registry import ModelEntry

if TYPE_CHECKING:
    import keras


def _weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.weights]


def _describe(layer) -> str:
    shapes = ", ".join(str(tuple(w.shape)) for w in layer.weights)
    return f"{layer.name!r} ({type(layer).__name__} {shapes})"


def _compatible(src_values: list[np.ndarray], dst_layer) -> bool:
    """Same weights, allowing a 1x1 conv kernel (1, 1, C, K) where a dense one (C, K) stands."""
    if len(src_values) != len(dst_layer.weights):
        return False
    for value, variable in zip(src_values, dst_layer.weights, strict=True):
        shape = tuple(variable.shape)
        if value.shape != shape and value.squeeze().shape != tuple(d for d in shape if d != 1):
            return False
    return True


def port_weights(src: keras.Model, dst: keras.Model) -> None:
    """Copies every weight of `src` into the structurally equivalent `dst`, layer by layer.

    The models must have the same weighted layers in the same order (names may differ, padding
    and pure-function layers are ignored); 1x1 convolutions on pooled features and dense layers
    are interchangeable. Raises ValueError naming the first pair that does not match.
    """
    src_layers, dst_layers = _weighted_layers(src), _weighted_layers(dst)
    if len(src_layers) != len(dst_layers):
        raise ValueError(
            f"port_weights: {src.name} has {len(src_layers)} weighted layers, "
            f"{dst.name} has {len(dst_layers)}; the models are not structurally equivalent"
        )
    pairs = []
    for i, (s, d) in enumerate(zip(src_layers, dst_layers, strict=True)):
        values = s.get_weights()
        if not _compatible(values, d):
            raise ValueError(
                f"port_weights: weighted layer {i} differs: {src.name} has {_describe(s)}, "
                f"{dst.name} has {_describe(d)}"
            )
        pairs.append((d, [v.reshape(w.shape) for v, w in zip(values, d.weights, strict=True)]))
    for layer, values in pairs:  # nothing is written unless every layer matched
        layer.set_weights(values)


def check_weights_arg(entry: ModelEntry, weights, num_classes: int) -> None:
    if weights is None:
        return
    if weights == "imagenet":
        if entry.keras_application is None:
            raise ValueError(
                f"no published ImageNet weights exist for {entry.name}; "
                "use weights=None or the path of a .weights.h5 file"
            )
        if num_classes != 1000:
            raise ValueError("weights='imagenet' needs num_classes=1000 (the ImageNet classes)")
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be None, 'imagenet' or a file path, got {weights!r}")
    if os.path.isdir(weights):
        raise ValueError(f"weights file {os.fspath(weights)!r} is a directory; give the "
                         ".weights.h5 file itself")
    if not os.path.isfile(weights):
        raise ValueError(f"weights file {os.fspath(weights)!r} does not exist")


def split_grouped(src: keras.Model, dst: keras.Model) -> None:
    """Copies a model's weights into its split_groups twin: each grouped conv `name` of `src`
    gives its output channels, group by group, to `name_g0`, `name_g1`, ... of `dst`."""
    by_name = {layer.name: layer for layer in _weighted_layers(src)}
    for layer in _weighted_layers(dst):
        if layer.name in by_name:
            layer.set_weights(by_name[layer.name].get_weights())
            continue
        grouped, _, index = layer.name.rpartition("_g")
        kernel = by_name[grouped].get_weights()[0]
        width = kernel.shape[-1] // by_name[grouped].groups
        layer.set_weights([kernel[..., int(index) * width:(int(index) + 1) * width]])


def load(model: keras.Model, entry: ModelEntry, weights, **build_args) -> None:
    if build_args.get("split_groups"):
        # Weights are trained and saved with grouped convs: load them there, then split.
        from tfmobile.models.registry import build

        split_grouped(build(entry.name, weights=weights, **{**build_args, "split_groups": False}),
                      model)
        return
    if str(weights).lower().endswith(".tflite"):
        load_tflite(model, weights)
        return
    if weights != "imagenet":
        try:
            model.load_weights(os.fspath(weights))
        except (ValueError, OSError) as err:
            lines = [line for line in str(err).splitlines() if line.strip()]
            reason = (lines or [type(err).__name__])[0]
            if reason.endswith(":") and len(lines) > 1:  # "Example error message for ...:"
                reason += " " + lines[1].split(" Target variable:")[0]  # the shapes, not values
            raise ValueError(
                f"cannot load weights file {os.fspath(weights)!r} into {model.name}: {reason} "
                "(expected a .weights.h5 file of this network, as tfmobile.train saves)"
            ) from None
        broken = [w.path for w in model.weights if not np.isfinite(w.numpy()).all()]
        if broken:  # a diverged training run: every output would be NaN
            raise ValueError(
                f"weights file {os.fspath(weights)!r} holds NaN or infinite values (in "
                f"{len(broken)} of its {len(model.weights)} tensors, e.g. {broken[0]}): "
                "the training that wrote it diverged; train again with a lower learning rate"
            )
        return
    try:
        published = entry.keras_application(weights="imagenet", **build_args)
    except Exception as err:  # noqa: BLE001 - Keras reports a failed download as a bare Exception
        if not _is_download_failure(err):
            raise  # a bug, not the network: let it show as one
        reason = " ".join(str(err).split()) or type(err).__name__
        raise RuntimeError(
            f"could not download the published Keras ImageNet weights for {entry.name} "
            f"(alpha {build_args['alpha']:g}, input {build_args['input_size']}): {reason}. "
            "Keras downloads them on first use into $KERAS_HOME/models (default "
            "~/.keras/models); where this machine cannot, copy the file named in that URL "
            "there, or pass weights=PATH to a .weights.h5 file."
        ) from err
    port_weights(published, model)


def load_tflite(model: keras.Model, path) -> None:
    """The weights of a published float .tflite classifier, checked against its own outputs on
    the embedded photographs (when it takes the model's input size). ValueError, one line."""
    from calibration import sources
    from calibration.preprocess import Preprocessing
    from tfmobile.models import tflite_weights

    facts = tflite_weights.port_tflite(path, model)
    size = int(model.input_shape[1])
    if facts["input_size"] == size:
        images = Preprocessing(size).batch(sources.load(sources.EMBEDDED).images)
        tflite_weights.check_outputs(path, model, facts, images, model.name)


def _is_download_failure(err: Exception) -> bool:
    """keras.utils.get_file turns urllib's HTTPError/URLError into `Exception("URL fetch
    failure on ...")`; a socket error can also come through as an OSError."""
    import urllib.error

    return (str(err).startswith("URL fetch failure")
            or isinstance(err, (urllib.error.URLError, ConnectionError, TimeoutError)))

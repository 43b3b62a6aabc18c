"""The detector families, each the same four functions, so the commands treat them alike:

- `head(backbone, num_classes, name)`: the training model on a backbone's feature levels;
- `anchors(model)`: the constant anchors [N, 4] (yc, xc, h, w) of TFLite_Detection_PostProcess;
- `deploy(model)`: the model as deployed, outputs `box_encodings` [1, N, 4] and
  `class_scores` [1, N, C+1] (sigmoid, background column 0), the op's inputs;
- `loss(outputs, gt_boxes, gt_classes, model)`: (total, parts) for the trainer.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import keras
import numpy as np


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    head: Callable[..., keras.Model]
    anchors: Callable[[keras.Model], np.ndarray]
    deploy: Callable[[keras.Model], keras.Model]
    loss: Callable
    # Decoding ops after the network that XNNPACK has no kernel for (op -> why): expected on
    # the CPU, as the post-processing op is.
    tail: dict = dataclasses.field(default_factory=dict)


def _ssdlite() -> Family:
    from tfmobile.detection import ssd_loss, ssdlite

    def loss(outputs, gt_boxes, gt_classes, model):
        return ssd_loss.ssd_loss(outputs["box_encodings"], outputs["class_logits"], gt_boxes,
                                 gt_classes, ssdlite.anchors(model))

    return Family("ssdlite", ssdlite.build, ssdlite.anchors, ssdlite.deploy, loss)


def _yolo() -> Family:
    from tfmobile.detection import yolo

    def head(backbone, num_classes, name):
        return yolo.build_yolo(backbone, num_classes=num_classes, name=name)

    def loss(outputs, gt_boxes, gt_classes, model):
        return yolo.yolo_loss(outputs, gt_boxes, gt_classes, input_size=model.input_shape[1],
                              num_classes=yolo.num_classes(model))

    why = ("expected: YOLOv5's size decoding, 10*log(max(2*sigmoid, 0.25)), written as the "
           "post-processing op's log-space encoding; XNNPACK has no int8 LOG or MAXIMUM, so "
           "these two run on the CPU's builtin kernels over [1, N, 2], after every convolution, "
           "and the multiply after them is a second, tiny partition")
    return Family("yolo", head, yolo.model_anchors, yolo.deploy_model, loss,
                  tail={"LOG": why, "MAXIMUM": why})


FAMILIES = {"ssdlite": _ssdlite, "yolo": _yolo}


def family(name: str) -> Family:
    return FAMILIES[name]()


def of(model: keras.Model) -> Family:
    """The family of a detector `build` made (its name says it)."""
    for name in FAMILIES:
        if model.name.startswith(f"{name}_"):
            return family(name)
    raise ValueError(f"{model.name} is not a detector this project builds")


def build(entry, *, alpha: float, input_size: int, num_classes: int, weights=None,
          **variant) -> keras.Model:
    """The detector `entry` names (tfmobile.models.build calls this for detectors).

    weights: None (random), "imagenet" (the backbone's published ImageNet weights, the usual
    start for training a detector) or a detector's `.weights.h5`.
    """
    from tfmobile.models import registry

    backbone = registry.build_backbone(
        entry.backbone, alpha=alpha, input_size=input_size,
        weights="imagenet" if weights == "imagenet" else None, **variant)
    name = f"{entry.name}_{alpha:g}_{input_size}"
    model = family(entry.family).head(backbone, num_classes, name)
    if weights not in (None, "imagenet"):
        if not os.path.isfile(weights):
            raise ValueError(f"weights file {os.fspath(weights)!r} does not exist")
        try:
            model.load_weights(weights)
        except ValueError as err:  # another detector's, or another class count's, weights
            raise ValueError(f"weights file {os.fspath(weights)!r} does not fit {name} with "
                             f"{num_classes} classes: {' '.join(str(err).split())[:200]}"
                             ) from None
    return model

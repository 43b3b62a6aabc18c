"""SSDLite (MobileNet V2 paper §6.2; MobileNet V3 paper §6.3) on any zoo backbone's C4 and C5.

Read top to bottom as the TF Object Detection API's SSDLite builds it:
- the backbone's C4 (stride 16) and C5 (stride 32), where the network's table attaches them;
- four extra layers on C5 of depths 512, 256, 256 and 128, each a 1x1 conv to half the depth,
  a 3x3 depthwise conv with stride 2 and a 1x1 conv to the depth (BN + ReLU6 after each);
- on each of the six maps, separable box and class predictors: a 3x3 depthwise conv (BN +
  ReLU6) and a 1x1 conv with bias to A*4 box encodings / A*(C+1) class logits.

Outputs are reshaped cell by cell and concatenated layer by layer, the order of
`tfmobile.detection.anchors.ssd_anchors`.
"""

from __future__ import annotations

import keras
from keras import layers

from tfmobile.detection import anchors as anchors_lib
from tfmobile.detection.ssd_loss import CLASS_BIAS_INIT
from tfmobile.models.blocks import BN_EPSILON, HeNormal

EXTRA_DEPTHS = (512, 256, 256, 128)  # layer_depth [-1, -1, 512, 256, 256, 128]
ACT = 6.0  # ReLU6 in the extra layers and predictors, as the SSDLite configs' conv_hyperparams


def _bn_relu6(x, name):
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(ACT, name=f"{name}_relu6")(x)


def extra_layer(x, depth: int, name: str):
    """1x1 to depth/2, 3x3 depthwise stride 2, 1x1 to depth (feature_map_generators, depthwise)."""
    x = layers.Conv2D(depth // 2, 1, use_bias=False, kernel_initializer=HeNormal(),
                      name=f"{name}_1x1_reduce")(x)
    x = _bn_relu6(x, f"{name}_1x1_reduce")
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False,
                               depthwise_initializer=HeNormal(depthwise=True),
                               name=f"{name}_dw")(x)
    x = _bn_relu6(x, f"{name}_dw")
    x = layers.Conv2D(depth, 1, use_bias=False, kernel_initializer=HeNormal(), name=f"{name}_1x1")(x)
    return _bn_relu6(x, f"{name}_1x1")


def separable_predictor(x, outputs_per_cell: int, code: int, name: str, bias: float = 0.0):
    """Depthwise 3x3 (BN + ReLU6), then a 1x1 conv with bias; reshaped to [B, H*W*A, code]."""
    h, w = x.shape[1], x.shape[2]
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                               depthwise_initializer=HeNormal(depthwise=True), name=f"{name}_dw")(x)
    x = _bn_relu6(x, f"{name}_dw")
    x = layers.Conv2D(outputs_per_cell * code, 1,
                      kernel_initializer=keras.initializers.RandomNormal(stddev=0.03),
                      bias_initializer=keras.initializers.Constant(bias), name=name)(x)
    return layers.Reshape((h * w * outputs_per_cell, code), name=f"{name}_flat")(x)


def build(backbone: keras.Model, num_classes: int, name: str) -> keras.Model:
    """The training model: image -> {"box_encodings": [B, N, 4], "class_logits": [B, N, C+1]}.

    `backbone` returns {"C4", "C5", ...} (tfmobile.models.build_backbone). Class logits carry
    the background in column 0; their bias starts at -4.6 (sigmoid 0.01), the focal loss's
    prior, so that the first steps are not swamped by thousands of background anchors.
    """
    levels = backbone.output
    maps = [levels["C4"], levels["C5"]]
    for i, depth in enumerate(EXTRA_DEPTHS):
        maps.append(extra_layer(maps[-1], depth, f"extra{i + 1}"))
    per_cell = anchors_lib.anchors_per_location()
    boxes, classes = [], []
    for i, (feature, count) in enumerate(zip(maps, per_cell, strict=True)):
        boxes.append(separable_predictor(feature, count, 4, f"box{i}"))
        classes.append(separable_predictor(feature, count, num_classes + 1, f"class{i}",
                                           bias=CLASS_BIAS_INIT))
    outputs = {
        "box_encodings": layers.Concatenate(axis=1, name="box_encodings")(boxes),
        "class_logits": layers.Concatenate(axis=1, name="class_logits")(classes),
    }
    return keras.Model(backbone.input, outputs, name=name)


def grids(model: keras.Model) -> list[tuple[int, int]]:
    """The (h, w) of each predictor's feature map, read off the built model."""
    found = []
    for i in range(len(anchors_lib.anchors_per_location())):
        shape = model.get_layer(f"box{i}_dw").input.shape
        found.append((shape[1], shape[2]))
    return found


def anchors(model: keras.Model):
    """The model's anchors [N, 4] (yc, xc, h, w), in its outputs' order."""
    return anchors_lib.ssd_anchors(grids(model))


def deploy(model: keras.Model) -> keras.Model:
    """The model as deployed: box encodings and sigmoid class scores, named for the converter."""
    outputs = model.output
    scores = layers.Activation("sigmoid", name="class_scores")(outputs["class_logits"])
    return keras.Model(model.input, {"box_encodings": outputs["box_encodings"],
                                     "class_scores": scores}, name=f"{model.name}_deploy")

"""A YOLOv5-style detector on any zoo backbone: YOLOv5's PAN neck and anchor head, its loss, and
an in-graph decode to the inputs of TFLite_Detection_PostProcess (reference: ultralytics/yolov5
models/yolo.py, models/common.py and utils/loss.py, as described in
shared/reference/detection.md §5; written from that description, not from their code).

Layout of a level's raw output, [B, H, W, 3 * (5 + C)]: channel a * (5 + C) + k is anchor a's
k-th value, k = (y, x, h, w, objectness, class 0, ..., class C-1), all logits. YOLOv5 stores
(x, y, w, h); y first here matches the project's [ymin, xmin, ...] convention and the op's
(ty, tx, th, tw), so the deploy graph needs no reordering.

Decisions, measured with TF 2.21 / ai-edge-litert 2.3 on this machine (int8 = full-integer
post-training quantization with TFLiteConverter, float interface):
- Activation: SiLU, as YOLOv5. It converts to LOGISTIC + MUL, which XNNPACK runs in int8, so the
  int8 network stays one XNNPACK partition. Keras's hard_swish converts to HARD_SWISH, which
  XNNPACK runs in float only: int8 it left the delegate at every occurrence (4 partitions for
  2 activations); ReLU stays in one partition too but is not YOLOv5's.
- Upsampling: neither Keras op converts to something XNNPACK takes. UpSampling2D becomes
  RESHAPE + TILE (TILE outside XNNPACK); Resizing(interpolation="nearest"),
  ops.image.resize and tf.compat.v1's resize_nearest_neighbor become RESIZE_NEAREST_NEIGHBOR,
  which int8-quantizes but which this XNNPACK does not have (the op left the delegate and split
  the graph in 2). `UpsampleNearest2x` writes the same nearest-neighbour x2 as two
  CONCATENATION + RESHAPE pairs (duplicate each pixel along the width, then each row), exact,
  4-D throughout, and inside XNNPACK in float and int8 (1 partition).
- The log of the size term: see `YoloDecode`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import keras
import numpy as np
from keras import layers, ops

from tfmobile.models.blocks import BN_EPSILON, HeNormal

LEVELS = ("P3", "P4", "P5")
STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 3
# YOLOv5's default anchors (w, h) in pixels, as its yaml writes them, per level P3/8, P4/16, P5/32.
# They were fit (k-means) to COCO at 640 px, and YOLOv5 keeps them in pixels whatever the input
# size: trained or run at 320 px the same pixel anchors are used, so relative to the image they
# are twice as large (normalized anchor = pixels / input_size; see `anchors`).
YOLO_ANCHORS_PX = np.array([
    [[10, 13], [16, 30], [33, 23]],
    [[30, 61], [62, 45], [59, 119]],
    [[116, 90], [156, 198], [373, 326]],
], np.float32)

# Default neck: output channels of P3, P4, P5 and bottlenecks per C3 block. YOLOv5n's neck is
# (64, 128, 256) with depth 1; (48, 96, 192) puts yolo on shufflenet_v2 1.0 at 320 px at
# ~1.5 M parameters, YOLOv5-Lite-s's size (1.64 M at 416 px per its README).
DEFAULT_WIDTHS = (48, 96, 192)
DEFAULT_DEPTH = 1
ACTIVATION = "silu"
BN_MOMENTUM = 0.97  # YOLOv5's BatchNorm2d momentum 0.03, in Keras's convention

# Loss, as YOLOv5's hyp.scratch-low.yaml and utils/loss.py set it.
ANCHOR_T = 4.0  # a target matches an anchor when both size ratios are within 4x
OFFSET = 0.5  # the neighbour rule: a centre in a cell's left half also goes to the left cell
OBJ_BALANCE = (4.0, 1.0, 0.4)  # objectness weight of P3, P4, P5
BOX_GAIN, CLS_GAIN, OBJ_GAIN = 0.05, 0.5, 1.0

# Deploy: YOLOv5's size is (2 sigma)^2 * anchor; the op's h = exp(th / 5) * ha needs
# th = 10 * log(2 sigma). 2 sigma is floored here before the log (boxes smaller than
# anchor / 16 come out as anchor / 16): YOLOv5 never trains a size below anchor / 4 (ANCHOR_T),
# and the floor bounds the int8 LOG's output range, which sets its step (see YoloDecode).
MIN_TWO_SIGMA = 0.25
BOX_SCALES = (10.0, 10.0, 5.0, 5.0)  # the op's y, x, h, w scales (tfmobile.detection convention)


# ---------------------------------------------------------------------------------------------
# Anchors


def grid_sizes(input_size: int) -> list[int]:
    """The side of each level's square grid."""
    if input_size % STRIDES[-1]:
        raise ValueError(f"input_size must be a multiple of {STRIDES[-1]} (YOLOv5's largest "
                         f"stride), got {input_size}")
    return [input_size // s for s in STRIDES]


def anchors(input_size: int) -> np.ndarray:
    """The op's constant anchors [N, 4] (yc, xc, h, w), normalized, in the deploy outputs' order:
    level P3, P4, P5, then row, column, anchor. (yc, xc) is the cell's centre and (h, w) the
    level's YOLO anchor in pixels / input_size, so the op decodes to YOLOv5's boxes (YoloDecode).
    """
    rows = []
    for grid, stride, level_anchors in zip(grid_sizes(input_size), STRIDES, YOLO_ANCHORS_PX,
                                           strict=True):
        centres = (np.arange(grid, dtype=np.float64) + 0.5) * stride / input_size
        yc, xc, a = np.meshgrid(centres, centres, np.arange(ANCHORS_PER_CELL), indexing="ij")
        h = level_anchors[a, 1] / input_size
        w = level_anchors[a, 0] / input_size
        rows.append(np.stack([yc, xc, h, w], axis=-1).reshape(-1, 4))
    return np.concatenate(rows).astype(np.float32)


def encoding_scales(input_size: int) -> np.ndarray:
    """[N, 4] factors from (2 sigma_y - 1, 2 sigma_x - 1, log 2 sigma_h, log 2 sigma_w) to the
    op's (ty, tx, th, tw): (10 stride / anchor_h, 10 stride / anchor_w, 10, 10).

    yc - ya = (2 sigma - 1/2 + gy) stride / S - (gy + 1/2) stride / S = (2 sigma - 1) stride / S
    and ty = 10 (yc - ya) / ha with ha = anchor_h / S; th = 5 log((2 sigma)^2) = 10 log 2 sigma."""
    rows = []
    for grid, stride, level_anchors in zip(grid_sizes(input_size), STRIDES, YOLO_ANCHORS_PX,
                                           strict=True):
        per_anchor = np.empty((ANCHORS_PER_CELL, 4))
        per_anchor[:, :2] = BOX_SCALES[0] * stride / level_anchors[:, ::-1]  # (h, w) order
        per_anchor[:, 2:] = 2 * BOX_SCALES[2]
        rows.append(np.tile(per_anchor, (grid * grid, 1)))
    return np.concatenate(rows).astype(np.float32)


def model_anchors(model: keras.Model) -> np.ndarray:
    """`anchors` for a model `build_yolo` built (training or deploy)."""
    return anchors(model.input_shape[1])


def num_classes(model: keras.Model) -> int:
    """The class count of a model `build_yolo` built, read off its P3 output's channels."""
    outputs = model.output
    p3 = outputs["P3"] if isinstance(outputs, Mapping) and "P3" in outputs else None
    if p3 is None:
        return int(model.output["class_scores"].shape[-1]) - 1
    return int(p3.shape[-1]) // ANCHORS_PER_CELL - 5


# ---------------------------------------------------------------------------------------------
# Neck


def conv_bn_act(x, filters: int, kernel: int, stride: int, name: str):
    """YOLOv5's Conv: conv without bias, BN, SiLU."""
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      kernel_initializer=HeNormal(), name=name)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation(ACTIVATION, name=f"{name}_act")(x)


def bottleneck(x, filters: int, name: str):
    """YOLOv5's Bottleneck as its C3 uses it (expansion 1.0): 1x1 then 3x3, no shortcut in the
    neck (YOLOv5's head passes shortcut=False)."""
    x = conv_bn_act(x, filters, 1, 1, f"{name}_cv1")
    return conv_bn_act(x, filters, 3, 1, f"{name}_cv2")


def c3(x, filters: int, depth: int, name: str):
    """CSP bottleneck with 3 convs: half the width through `depth` bottlenecks, half through a
    1x1 shortcut path, concatenated and mixed by a 1x1 to `filters`."""
    hidden = filters // 2
    a = conv_bn_act(x, hidden, 1, 1, f"{name}_cv1")
    for i in range(depth):
        a = bottleneck(a, hidden, f"{name}_m{i}")
    b = conv_bn_act(x, hidden, 1, 1, f"{name}_cv2")
    x = layers.Concatenate(name=f"{name}_concat")([a, b])
    return conv_bn_act(x, filters, 1, 1, f"{name}_cv3")


def sppf(x, filters: int, name: str, pool: int = 5):
    """Spatial pyramid pooling, fast: 1x1 to half, three chained 5x5 max pools (receptive
    fields 5, 9, 13), concatenation of all four, 1x1 to `filters`.

    YOLOv5 halves its input's width; its own C5 already has the output width. A zoo backbone's
    C5 is often wider (464 in ShuffleNet V2), so the hidden width here is half the output's:
    YOLOv5's for its own backbone, and no 928-channel concat for ShuffleNet's."""
    hidden = filters // 2
    x = conv_bn_act(x, hidden, 1, 1, f"{name}_cv1")
    pooled = [x]
    for i in range(3):
        pooled.append(layers.MaxPooling2D(pool, strides=1, padding="same",
                                          name=f"{name}_pool{i}")(pooled[-1]))
    x = layers.Concatenate(name=f"{name}_concat")(pooled)
    return conv_bn_act(x, filters, 1, 1, f"{name}_cv2")


@keras.saving.register_keras_serializable("tfmobile")
class UpsampleNearest2x(layers.Layer):
    """Nearest-neighbour x2 upsampling as CONCATENATION + RESHAPE, which XNNPACK runs in int8.

    [N, H, W, C] -> concat with itself on channels -> [N, H, W, 2C] -> reshape [N, H, 2W, C]
    (each pixel twice along the row) -> concat with itself on width -> [N, H, 4W, C] ->
    reshape [N, 2H, 2W, C] (each row twice). Exactly UpSampling2D(2, "nearest"); the
    converter's alternatives leave XNNPACK (module docstring). Concatenating a tensor with
    itself keeps its int8 scale, so nothing is requantized."""

    def call(self, x):
        _, h, w, c = x.shape
        x = ops.reshape(ops.concatenate([x, x], axis=-1), (-1, h, 2 * w, c))
        return ops.reshape(ops.concatenate([x, x], axis=2), (-1, 2 * h, 2 * w, c))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, 2 * h, 2 * w, c)


def pan_neck(features: Mapping, widths: Sequence[int] = DEFAULT_WIDTHS, depth: int = DEFAULT_DEPTH):
    """YOLOv5's neck on {"C3", "C4", "C5"}: SPPF on C5, then the PAN.

    Top-down: 1x1 to P4's width, upsample, concat C4, C3 block; 1x1 to P3's width, upsample,
    concat C3, C3 block -> P3. Bottom-up: 3x3 stride 2, concat the second 1x1's output, C3
    block -> P4; 3x3 stride 2, concat the first 1x1's output, C3 block -> P5. YOLOv5's widths
    are (256, 512, 1024) x its width multiple; `widths` gives the three directly."""
    w3, w4, w5 = widths
    p5 = sppf(features["C5"], w5, "neck_sppf")
    lateral5 = conv_bn_act(p5, w4, 1, 1, "neck_lateral5")
    x = UpsampleNearest2x(name="neck_up5")(lateral5)
    x = layers.Concatenate(name="neck_cat4")([x, features["C4"]])
    x = c3(x, w4, depth, "neck_td4")
    lateral4 = conv_bn_act(x, w3, 1, 1, "neck_lateral4")
    x = UpsampleNearest2x(name="neck_up4")(lateral4)
    x = layers.Concatenate(name="neck_cat3")([x, features["C3"]])
    out3 = c3(x, w3, depth, "neck_out3")
    x = conv_bn_act(out3, w3, 3, 2, "neck_down3")
    x = layers.Concatenate(name="neck_cat_bu4")([x, lateral4])
    out4 = c3(x, w4, depth, "neck_out4")
    x = conv_bn_act(out4, w4, 3, 2, "neck_down4")
    x = layers.Concatenate(name="neck_cat_bu5")([x, lateral5])
    out5 = c3(x, w5, depth, "neck_out5")
    return {"P3": out3, "P4": out4, "P5": out5}


# ---------------------------------------------------------------------------------------------
# Head and the training model


def head_bias(stride: int, classes: int, input_size: int = 640) -> np.ndarray:
    """YOLOv5's initial bias of one level's 1x1 predictor, [3 * (5 + C)]: objectness
    log(8 / (640 / s)^2), a prior of 8 objects per 640-px image spread over the level's cells,
    and class log(0.6 / (C - 0.99999)), a prior of 0.6 / C. YOLOv5 writes 640 whatever the
    training size; `input_size` keeps the 8-per-image meaning at other sizes (log 4 more at
    320 px) and defaults to YOLOv5's 640."""
    bias = np.zeros((ANCHORS_PER_CELL, 5 + classes), np.float32)
    bias[:, 4] = math.log(8 / (input_size / stride) ** 2)
    bias[:, 5:] = math.log(0.6 / (classes - 0.99999))
    return bias.reshape(-1)


def _graph_inputs(tensors) -> list:
    """The Input tensors a functional graph of KerasTensors starts from."""
    found, seen, pending = [], set(), list(tensors)
    while pending:
        tensor = pending.pop()
        operation, node_index, _ = tensor._keras_history
        if id(operation) in seen:
            continue
        seen.add(id(operation))
        node = operation._inbound_nodes[node_index]
        if node.is_input:
            found.append(tensor)
        pending.extend(node.input_tensors)
    return found


def build_yolo(backbone_features, input_size: int | None = None, num_classes: int = 80,
               width: Sequence[int] = DEFAULT_WIDTHS, depth: int = DEFAULT_DEPTH,
               name: str = "yolo") -> keras.Model:
    """The training model: image -> {"P3", "P4", "P5"} raw level outputs [B, H, W, 3 * (5 + C)].

    `backbone_features`: a backbone keras.Model whose output is {"C3": stride 8, "C4": 16,
    "C5": 32} (tfmobile.models.build_backbone), or such a dict of KerasTensors (the model's
    input is found by walking back from them). Its layers become the model's own, so
    tfmobile.profile counts them. `input_size` is read off the input when None. `name` should
    start with "yolo_" for tfmobile.detection.families.of to recognise the model."""
    if isinstance(backbone_features, keras.Model):
        image, features = backbone_features.input, backbone_features.output
    else:
        features = dict(backbone_features)
        (image,) = _graph_inputs([features[k] for k in ("C3", "C4", "C5")])
    size = image.shape[1] if input_size is None else input_size
    grid_sizes(size)  # checks the size
    necks = pan_neck(features, width, depth)
    init = keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform")  # PyTorch's default
    outputs = {}
    for level, stride in zip(LEVELS, STRIDES, strict=True):
        bias = head_bias(stride, num_classes)  # YOLOv5's literal 640, whatever the input size
        outputs[level] = layers.Conv2D(
            len(bias), 1, kernel_initializer=init,
            bias_initializer=keras.initializers.Constant(bias), name=f"head_{level}",
        )(necks[level])
    return keras.Model(image, outputs, name=name)


# ---------------------------------------------------------------------------------------------
# Deploy: decode to the inputs of TFLite_Detection_PostProcess


@keras.saving.register_keras_serializable("tfmobile")
class YoloDecode(layers.Layer):
    """Raw level outputs -> (box_encodings [B, N, 4], class_scores [B, N, C + 1]) such that
    TFLite_Detection_PostProcess with `anchors(input_size)` and scales (10, 10, 5, 5) decodes
    exactly YOLOv5's boxes: yc = (2 sigma_y - 1/2 + gy) * stride, h = (2 sigma_h)^2 * anchor_h.

    With ya the cell centre and ha the anchor (both normalized):
    - ty = 10 (yc - ya) / ha = (10 stride / anchor_h) (2 sigma_y - 1): linear in sigma;
    - th = 5 log(h / ha) = 10 log(2 sigma_h), with 2 sigma_h floored at MIN_TWO_SIGMA;
    computed as one CONCATENATION of (2 sigma - 1, log 2 sigma) times `encoding_scales`.
    - class_scores: objectness x class sigmoid, as YOLOv5 scores; column 0 (background, which
      the op skips) is zeros rather than 1 - obj: nothing reads it, and zeros widen no int8
      range. With C = 1 YOLOv5 trains no class term; its class bias starts at log(0.6 /
      0.00001), so the score is the objectness.

    Where the log goes (measured on the overfit stand-in detector of
    tests/test_detection_yolo.py, full-integer int8 with TFLiteConverter):
    - (a) in the int8 graph works. The quantizer accepts LOG and gives it an int8 kernel (a
      lookup table; alone, it is within half a step of the true log). XNNPACK has no int8 LOG
      nor int8 MAXIMUM, so the floor and the log run on the builtin kernels, on a [1, N, 2]
      tensor, after every convolution; the CONCATENATION and MUL after them form a second,
      tiny XNNPACK partition. The network itself is one partition.
    - The order matters: int8 CONCATENATION shares one scale among its inputs, and the
      quantizer carried it back through the MUL to LOG's output. Concatenating ty (range
      +-8) with 10 log 2 sigma left LOG a step of 0.078 (in log units): th off by 0.2 (median)
      to 0.39, box sizes by 4-8%. Concatenating (2 sigma - 1) with log 2 sigma (similar
      ranges, step 0.009) and scaling after: th off by 0.025 (median), 0.12 at most.
    - The floor bounds LOG's range: with it at 2/256 (none, in effect) th was off by 0.033
      (median) instead of 0.025 on that model; on a model whose sizes reach small sigmas
      calibration would stretch LOG's range to 10 log(2/256) unfloored.
    - (b) 10 (log 2 - softplus(-t)) needs a LOG (and an EXP) as well, so gains nothing; (c)
      predicting th directly (SSD's parametrisation) would change YOLOv5's training, and is
      not needed.

    Sigmoids are taken per level before the concatenation: int8 LOGISTIC outputs share one
    fixed scale, so the concatenation needs no requantization.
    """

    def __init__(self, input_size: int, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.input_size = input_size
        self.num_classes = num_classes
        self.encoding_scales = encoding_scales(input_size)[None]

    def call(self, raws):
        code = 5 + self.num_classes
        sigmoids = [
            ops.sigmoid(ops.reshape(raw, (-1, raw.shape[1] * raw.shape[2] * ANCHORS_PER_CELL, code)))
            for raw in raws
        ]
        s = ops.concatenate(sigmoids, axis=1)
        centre = 2.0 * s[..., 0:2] - 1.0
        log_size = ops.log(ops.maximum(2.0 * s[..., 2:4], MIN_TWO_SIGMA))
        box_encodings = ops.concatenate([centre, log_size], axis=-1) * self.encoding_scales
        scores = s[..., 4:5] * s[..., 5:]
        class_scores = ops.pad(scores, [[0, 0], [0, 0], [1, 0]])
        return box_encodings, class_scores

    def compute_output_shape(self, input_shape):
        n = sum(shape[1] * shape[2] * ANCHORS_PER_CELL for shape in input_shape)
        return (input_shape[0][0], n, 4), (input_shape[0][0], n, self.num_classes + 1)

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size,
                "num_classes": self.num_classes}


def deploy_model(training_model: keras.Model, input_size: int | None = None,
                 num_classes: int | None = None) -> keras.Model:
    """The model as deployed: image -> {"box_encodings": [B, N, 4], "class_scores": [B, N, C+1]},
    the inputs of TFLite_Detection_PostProcess with the constant `anchors(input_size)`.
    `input_size` and `num_classes` are read off the training model when None."""
    size = training_model.input_shape[1] if input_size is None else input_size
    classes = globals()["num_classes"](training_model) if num_classes is None else num_classes
    raws = [training_model.output[level] for level in LEVELS]
    box_encodings, class_scores = YoloDecode(size, classes, name="decode")(raws)
    box_encodings = layers.Identity(name="box_encodings")(box_encodings)
    class_scores = layers.Identity(name="class_scores")(class_scores)
    return keras.Model(training_model.input,
                       {"box_encodings": box_encodings, "class_scores": class_scores},
                       name=f"{training_model.name}_deploy")


def decode_numpy(raws: Sequence[np.ndarray], input_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLOv5's decode, straight from its formula (a reference for tests and tools): raw level
    outputs [B, H, W, 3 * (5 + C)] -> boxes [B, N, 4] normalized (ymin, xmin, ymax, xmax),
    objectness [B, N], class probabilities [B, N, C], in `anchors`' order. No floor."""
    boxes, obj, cls = [], [], []
    for raw, stride, level_anchors in zip(raws, STRIDES, YOLO_ANCHORS_PX, strict=True):
        b, h, w, _ = raw.shape
        s = 1 / (1 + np.exp(-raw.reshape(b, h, w, ANCHORS_PER_CELL, -1).astype(np.float64)))
        gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        yc = (2 * s[..., 0] - 0.5 + gy[..., None]) * stride
        xc = (2 * s[..., 1] - 0.5 + gx[..., None]) * stride
        bh = (2 * s[..., 2]) ** 2 * level_anchors[:, 1]
        bw = (2 * s[..., 3]) ** 2 * level_anchors[:, 0]
        corners = np.stack([yc - bh / 2, xc - bw / 2, yc + bh / 2, xc + bw / 2], -1) / input_size
        boxes.append(corners.reshape(b, -1, 4))
        obj.append(s[..., 4].reshape(b, -1))
        cls.append(s[..., 5:].reshape(b, h * w * ANCHORS_PER_CELL, -1))
    return (np.concatenate(boxes, 1).astype(np.float32), np.concatenate(obj, 1).astype(np.float32),
            np.concatenate(cls, 1).astype(np.float32))


# ---------------------------------------------------------------------------------------------
# Loss


def _level_list(level_outputs) -> list:
    if isinstance(level_outputs, Mapping):
        return [level_outputs[level] for level in LEVELS]
    return list(level_outputs)


def loss_gains(input_size: int, num_classes: int, num_levels: int = 3) -> dict:
    """YOLOv5's train.py scaling of hyp.scratch-low's gains: box x 3/nl, cls x nc/80 x 3/nl,
    obj x (imgsz/640)^2 x 3/nl. Objectness BCE is a mean over all cells, whose count grows with
    the image's area; the class BCE a mean over classes."""
    layers_factor = 3 / num_levels
    return {"box": BOX_GAIN * layers_factor,
            "cls": CLS_GAIN * num_classes / 80 * layers_factor,
            "obj": OBJ_GAIN * (input_size / 640) ** 2 * layers_factor}


def ciou(box1, box2, eps: float = 1e-7):
    """Complete IoU of (yc, xc, h, w) boxes, elementwise: IoU - centre distance^2 / enclosing
    diagonal^2 - alpha v, v measuring the aspect-ratio mismatch. alpha is held constant under
    differentiation, as YOLOv5 computes it without gradient."""
    import tensorflow as tf

    y1, x1, h1, w1 = tf.unstack(box1, axis=-1)
    y2, x2, h2, w2 = tf.unstack(box2, axis=-1)
    h1, w1, h2, w2 = h1 + eps, w1, h2 + eps, w2  # YOLOv5 adds eps to heights
    top = tf.maximum(y1 - h1 / 2, y2 - h2 / 2)
    bottom = tf.minimum(y1 + h1 / 2, y2 + h2 / 2)
    left = tf.maximum(x1 - w1 / 2, x2 - w2 / 2)
    right = tf.minimum(x1 + w1 / 2, x2 + w2 / 2)
    inter = tf.maximum(bottom - top, 0.0) * tf.maximum(right - left, 0.0)
    union = h1 * w1 + h2 * w2 - inter + eps
    iou = inter / union
    enclosing_h = tf.maximum(y1 + h1 / 2, y2 + h2 / 2) - tf.minimum(y1 - h1 / 2, y2 - h2 / 2)
    enclosing_w = tf.maximum(x1 + w1 / 2, x2 + w2 / 2) - tf.minimum(x1 - w1 / 2, x2 - w2 / 2)
    diagonal2 = enclosing_h**2 + enclosing_w**2 + eps
    distance2 = (y2 - y1) ** 2 + (x2 - x1) ** 2
    v = (4 / math.pi**2) * (tf.atan(w2 / h2) - tf.atan(w1 / h1)) ** 2
    alpha = tf.stop_gradient(v / (v - iou + (1 + eps)))
    return iou - (distance2 / diagonal2 + v * alpha)


# Candidate cells of a target, as offsets (dy, dx) subtracted from its grid position before
# flooring: its own cell, then left, up, right, down (YOLOv5's order, (x, y) there).
_NEIGHBOURS = np.array([[0, 0], [0, 1], [1, 0], [0, -1], [-1, 0]], np.float32) * OFFSET


def build_targets(gt_boxes, gt_classes, grid: tuple[int, int], level_anchors_px, stride: int,
                  anchor_t: float = ANCHOR_T):
    """YOLOv5's target assignment on one level, dense over (box, anchor, candidate cell).

    gt_boxes [B, M, 4] normalized yxyx; gt_classes [B, M], -1 for padding. For each box and
    each of the level's 3 anchors: matched when h / anchor_h and w / anchor_w are both within
    [1 / anchor_t, anchor_t]. A matched box goes to its own cell and to the neighbouring cell
    on the side of each centre coordinate nearer to it (fraction < 0.5: left / up; > 0.5:
    right / down), unless that coordinate is within 1 cell of the image border; so to 1-3
    cells (a centre exactly at a cell's centre: 1).

    Returns a dict of [B, M, 3, 5] tensors (anchor, candidate): "mask" bool, "cell" int32
    [..., 2] (row, col), "box" [..., 4] (y, x offset from the cell's corner, h, w) in grid
    units, "anchor" [..., 2] (h, w) in grid units.
    """
    import tensorflow as tf

    gh_cells, gw_cells = grid
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    valid = tf.convert_to_tensor(gt_classes) >= 0  # [B, M]
    ymin, xmin, ymax, xmax = tf.unstack(gt_boxes, axis=-1)
    gy = (ymin + ymax) / 2 * gh_cells
    gx = (xmin + xmax) / 2 * gw_cells
    gh = (ymax - ymin) * gh_cells
    gw = (xmax - xmin) * gw_cells
    anchor_hw = tf.constant(np.asarray(level_anchors_px, np.float32)[:, ::-1] / stride)  # [3, 2]
    ratio_h = gh[..., None] / anchor_hw[:, 0]
    ratio_w = gw[..., None] / anchor_hw[:, 1]
    worst = tf.reduce_max(tf.stack([ratio_h, 1 / ratio_h, ratio_w, 1 / ratio_w], -1), -1)
    matched = (worst < anchor_t) & valid[..., None]  # [B, M, 3]

    inv_y, inv_x = gh_cells - gy, gw_cells - gx
    own = tf.ones_like(valid)
    candidate = tf.stack([
        own,
        (tf.math.floormod(gx, 1.0) < OFFSET) & (gx > 1),  # left
        (tf.math.floormod(gy, 1.0) < OFFSET) & (gy > 1),  # up
        (tf.math.floormod(inv_x, 1.0) < OFFSET) & (inv_x > 1),  # right
        (tf.math.floormod(inv_y, 1.0) < OFFSET) & (inv_y > 1),  # down
    ], axis=-1)  # [B, M, 5]
    mask = matched[..., None] & candidate[:, :, None, :]  # [B, M, 3, 5]

    offsets = tf.constant(_NEIGHBOURS)
    row = tf.clip_by_value(tf.floor(gy[..., None] - offsets[:, 0]), 0, gh_cells - 1)  # [B, M, 5]
    col = tf.clip_by_value(tf.floor(gx[..., None] - offsets[:, 1]), 0, gw_cells - 1)
    box = tf.stack([gy[..., None] - row, gx[..., None] - col,
                    tf.broadcast_to(gh[..., None], tf.shape(row)),
                    tf.broadcast_to(gw[..., None], tf.shape(row))], -1)  # [B, M, 5, 4]
    shape = tf.shape(mask)
    cell = tf.cast(tf.stack([row, col], -1), tf.int32)[:, :, None]  # [B, M, 1, 5, 2]
    return {
        "mask": mask,
        "cell": tf.broadcast_to(cell, tf.concat([shape, [2]], 0)),
        "box": tf.broadcast_to(box[:, :, None], tf.concat([shape, [4]], 0)),
        "anchor": tf.broadcast_to(anchor_hw[None, None, :, None], tf.concat([shape, [2]], 0)),
    }


def yolo_loss(level_outputs, gt_boxes, gt_classes, input_size: int, num_classes: int,
              anchor_t: float = ANCHOR_T):
    """YOLOv5's loss -> (total, {"box", "obj", "cls"}), in TensorFlow ops (traceable; no loop
    over boxes, only over the 3 levels).

    level_outputs: the training model's {"P3", "P4", "P5"} (or a sequence in that order) of
    [B, H, W, 3 * (5 + C)] logits. gt_boxes [B, M, 4] normalized yxyx; gt_classes [B, M] int,
    -1 for padding (M may be 0).

    - box: 1 - CIoU between each assigned (box, anchor, cell) and its prediction, with YOLOv5's
      decode in grid units (centre 2 sigma - 0.5 from the cell's corner, size (2 sigma)^2
      anchor), averaged over assignments.
    - obj: BCE of every cell and anchor against the target objectness, the detached CIoU of
      its assignment clamped at 0 (the highest where a cell has several; 0 where none), a mean
      per level weighted 4.0, 1.0, 0.4 for P3, P4, P5.
    - cls: BCE of the assigned predictions' class logits against one-hot labels, averaged over
      assignments and classes; only when C > 1 (0 otherwise).
    Each part is a mean per level summed over levels (a level without assignments adds 0), as
    YOLOv5 sums them, and carries its gain (`loss_gains`: YOLOv5's hyp.scratch-low scaled as its train.py
    does). The parts are returned as YOLOv5 logs them; the total is their sum times the batch
    size, as YOLOv5 returns it (its SGD learning rates are tuned to that; with Adam the factor
    only rescales the gradient clipping threshold).
    """
    import tensorflow as tf

    raws = _level_list(level_outputs)
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    gt_classes = tf.cast(tf.convert_to_tensor(gt_classes), tf.int32)
    gains = loss_gains(input_size, num_classes, len(raws))
    code = 5 + num_classes
    batch = tf.shape(raws[0])[0]
    box_loss = cls_loss = obj_loss = 0.0
    for raw, stride, level_anchors, balance in zip(raws, STRIDES, YOLO_ANCHORS_PX, OBJ_BALANCE,
                                                   strict=True):
        raw = tf.cast(raw, tf.float32)
        h, w = raw.shape[1], raw.shape[2]
        raw = tf.reshape(raw, [batch, h, w, ANCHORS_PER_CELL, code])
        t = build_targets(gt_boxes, gt_classes, (h, w), level_anchors, stride, anchor_t)
        mask = tf.cast(t["mask"], tf.float32)  # [B, M, 3, 5]
        shape = tf.shape(t["mask"])
        batch_index = tf.broadcast_to(tf.range(shape[0])[:, None, None, None], shape)
        anchor_index = tf.broadcast_to(tf.range(ANCHORS_PER_CELL)[None, None, :, None], shape)
        index = tf.stack([batch_index, t["cell"][..., 0], t["cell"][..., 1], anchor_index], -1)
        predicted = tf.gather_nd(raw, index)  # [B, M, 3, 5, 5 + C]
        sig = tf.sigmoid(predicted[..., :4])
        centre = sig[..., 0:2] * 2 - 0.5
        size = (sig[..., 2:4] * 2) ** 2 * t["anchor"]
        iou = ciou(tf.concat([centre, size], -1), t["box"])
        count = tf.reduce_sum(mask)  # YOLOv5 averages per level; a level without any adds 0
        box_loss += tf.math.divide_no_nan(tf.reduce_sum(mask * (1 - iou)), count)

        target_obj = tf.stop_gradient(tf.maximum(iou, 0.0)) * mask
        tobj = tf.tensor_scatter_nd_max(tf.zeros([batch, h, w, ANCHORS_PER_CELL]),
                                        tf.reshape(index, [-1, 4]), tf.reshape(target_obj, [-1]))
        obj_loss += balance * tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=tobj, logits=raw[..., 4]))

        if num_classes > 1:
            labels = tf.one_hot(tf.maximum(gt_classes, 0), num_classes)[:, :, None, None]
            labels = tf.broadcast_to(labels, tf.shape(predicted[..., 5:]))
            bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=predicted[..., 5:])
            cls_loss += tf.math.divide_no_nan(tf.reduce_sum(mask[..., None] * bce),
                                              count * num_classes)
    parts = {name: tf.convert_to_tensor(value * gains[name], tf.float32)
             for name, value in (("box", box_loss), ("obj", obj_loss), ("cls", cls_loss))}
    total = (parts["box"] + parts["obj"] + parts["cls"]) * tf.cast(batch, tf.float32)
    return total, parts

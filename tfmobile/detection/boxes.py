"""Box arithmetic in the package's conventions (tfmobile/detection/__init__.py): corners
[ymin, xmin, ymax, xmax], anchors [yc, xc, h, w], encodings [ty, tx, th, tw] with scales
(10, 10, 5, 5), the OD API's faster_rcnn box coder and TFLite_Detection_PostProcess's decoder.

Each function comes twice: in NumPy, for evaluation, tests and export (a constant anchor
tensor), and with a `tf_` prefix in TensorFlow ops, for a traced train step. All of them work
on any leading dimensions.
"""

from __future__ import annotations

import numpy as np

SCALES = (10.0, 10.0, 5.0, 5.0)
# Added to heights and widths before dividing and taking logs, as the OD API's coder does, so
# a degenerate (zero-size) box encodes to large finite numbers instead of inf or NaN.
EPSILON = 1e-8


def to_corners(centres):
    """[..., 4] (yc, xc, h, w) -> (ymin, xmin, ymax, xmax)."""
    centres = np.asarray(centres)
    half = centres[..., 2:] / 2
    return np.concatenate([centres[..., :2] - half, centres[..., :2] + half], axis=-1)


def to_centres(corners):
    """[..., 4] (ymin, xmin, ymax, xmax) -> (yc, xc, h, w)."""
    corners = np.asarray(corners)
    size = corners[..., 2:] - corners[..., :2]
    return np.concatenate([corners[..., :2] + size / 2, size], axis=-1)


def clip(corners, low: float = 0.0, high: float = 1.0):
    """Corners clipped to the image ([0, 1] normalized)."""
    return np.clip(corners, low, high)


def area(corners):
    corners = np.asarray(corners)
    size = np.maximum(corners[..., 2:] - corners[..., :2], 0.0)
    return size[..., 0] * size[..., 1]


def iou(a, b):
    """Intersection over union of corners a [..., Na, 4] and b [..., Nb, 4]: [..., Na, Nb].
    Zero where both boxes are empty (the union is 0), rather than NaN."""
    a, b = np.asarray(a)[..., :, None, :], np.asarray(b)[..., None, :, :]
    top_left = np.maximum(a[..., :2], b[..., :2])
    bottom_right = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.prod(np.maximum(bottom_right - top_left, 0.0), axis=-1)
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def encode(corners, anchors, scales=SCALES):
    """Corners [..., 4] against anchors [..., 4] (yc, xc, h, w) -> [..., 4] (ty, tx, th, tw)."""
    box = to_centres(corners)
    anchors = np.asarray(anchors)
    ha, wa = anchors[..., 2] + EPSILON, anchors[..., 3] + EPSILON
    h, w = box[..., 2] + EPSILON, box[..., 3] + EPSILON
    return np.stack([
        (box[..., 0] - anchors[..., 0]) / ha * scales[0],
        (box[..., 1] - anchors[..., 1]) / wa * scales[1],
        np.log(h / ha) * scales[2],
        np.log(w / wa) * scales[3],
    ], axis=-1)


def decode(encodings, anchors, scales=SCALES):
    """Encodings [..., 4] (ty, tx, th, tw) against anchors [..., 4] -> corners [..., 4], as
    TFLite_Detection_PostProcess decodes them."""
    t, anchors = np.asarray(encodings), np.asarray(anchors)
    yc = t[..., 0] / scales[0] * anchors[..., 2] + anchors[..., 0]
    xc = t[..., 1] / scales[1] * anchors[..., 3] + anchors[..., 1]
    h = np.exp(t[..., 2] / scales[2]) * anchors[..., 2]
    w = np.exp(t[..., 3] / scales[3]) * anchors[..., 3]
    return to_corners(np.stack([yc, xc, h, w], axis=-1))


# TensorFlow twins, for the train step. TensorFlow is imported inside them so that the NumPy
# half of the module loads without it.

def tf_to_corners(centres):
    import tensorflow as tf

    half = centres[..., 2:] / 2
    return tf.concat([centres[..., :2] - half, centres[..., :2] + half], axis=-1)


def tf_to_centres(corners):
    import tensorflow as tf

    size = corners[..., 2:] - corners[..., :2]
    return tf.concat([corners[..., :2] + size / 2, size], axis=-1)


def tf_clip(corners, low: float = 0.0, high: float = 1.0):
    import tensorflow as tf

    return tf.clip_by_value(corners, low, high)


def tf_area(corners):
    import tensorflow as tf

    size = tf.maximum(corners[..., 2:] - corners[..., :2], 0.0)
    return size[..., 0] * size[..., 1]


def tf_iou(a, b):
    """As iou: a [..., Na, 4], b [..., Nb, 4] (leading dimensions broadcast) -> [..., Na, Nb]."""
    import tensorflow as tf

    a, b = a[..., :, None, :], b[..., None, :, :]
    top_left = tf.maximum(a[..., :2], b[..., :2])
    bottom_right = tf.minimum(a[..., 2:], b[..., 2:])
    inter = tf.reduce_prod(tf.maximum(bottom_right - top_left, 0.0), axis=-1)
    union = tf_area(a) + tf_area(b) - inter
    return tf.math.divide_no_nan(inter, union)


def tf_encode(corners, anchors, scales=SCALES):
    import tensorflow as tf

    box = tf_to_centres(corners)
    ha, wa = anchors[..., 2] + EPSILON, anchors[..., 3] + EPSILON
    h, w = box[..., 2] + EPSILON, box[..., 3] + EPSILON
    return tf.stack([
        (box[..., 0] - anchors[..., 0]) / ha * scales[0],
        (box[..., 1] - anchors[..., 1]) / wa * scales[1],
        tf.math.log(h / ha) * scales[2],
        tf.math.log(w / wa) * scales[3],
    ], axis=-1)


def tf_decode(encodings, anchors, scales=SCALES):
    import tensorflow as tf

    t = encodings
    yc = t[..., 0] / scales[0] * anchors[..., 2] + anchors[..., 0]
    xc = t[..., 1] / scales[1] * anchors[..., 3] + anchors[..., 1]
    h = tf.exp(t[..., 2] / scales[2]) * anchors[..., 2]
    w = tf.exp(t[..., 3] / scales[3]) * anchors[..., 3]
    return tf_to_corners(tf.stack([yc, xc, h, w], axis=-1))

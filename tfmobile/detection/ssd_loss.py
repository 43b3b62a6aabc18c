"""The SSDLite training objective of the TF OD API's MobileNet V3 configs (reference/detection.md
§3), in TensorFlow ops for a traced train step, vectorized over the batch.

- Matching (argmax matcher, thresholds 0.5/0.5, force_match_for_each_row): an anchor is matched
  to the ground-truth box it overlaps most if that IoU is at least 0.5, else it is background;
  then every ground-truth box takes its own best anchor whatever the IoU, so a box no anchor
  fits well (small, or of an odd shape) still trains one. With equal thresholds no anchor is
  "ignored". When two boxes claim the same best anchor, the first of them gets it.
- Targets: over the C + 1 columns, a one-hot row at column c + 1 for an anchor matched to a box
  of class c, and for unmatched anchors all zeros: the V3 configs set encode_background_as_zeros
  (ssdlite_mobilenet_v3_large_320x320_coco.config@608bd22; not in §3's table), so column 0
  (background, which TFLite_Detection_PostProcess skips) is trained towards 0 on every anchor,
  and "background" means every column low. With background_as_zeros=False it is the one-hot
  background row [1, 0, ...] instead (the OD API's default, which
  ssdlite_mobilenet_v2_coco.config@c76bfcf keeps, with its hard example miner). Box encodings
  (tfmobile/detection/boxes.py) for matched anchors.
- Classification: sigmoid focal loss, alpha 0.75 and gamma 2, summed over every anchor and
  every column. With the class predictor's bias at CLASS_BIAS_INIT every column starts near
  the all-zero target, so the first steps' loss is small; a one-hot background row would
  instead cost ~3.4 per unmatched anchor at that prior (0.75 * 0.99^2 * 4.6), ~150 per match
  at the start of the stand-in test's training.
- Localization: smooth L1 (Huber, delta 1) summed over the 4 coordinates of matched anchors,
  divided by the code size 4.
- Both are summed over the batch and divided by the batch's number of matched anchors (at
  least 1), each weighted 1.0: the OD API's normalize_loss_by_num_matches.
"""

from __future__ import annotations

MATCH_THRESHOLD = 0.5
FOCAL_ALPHA = 0.75
FOCAL_GAMMA = 2.0
HUBER_DELTA = 1.0
CODE_SIZE = 4
# The configs' class predictor bias_init: sigmoid(-4.6) = 0.01, the focal loss paper's prior
# that every column starts out unlikely (Lin et al. 2017, §4.1 "Initialization").
CLASS_BIAS_INIT = -4.6


def match(gt_boxes, gt_classes, anchors, *, threshold: float = MATCH_THRESHOLD,
          force_match_for_each_row: bool = True):
    """int32 [B, N]: the index in [0, M) of the ground-truth box each anchor is matched to,
    or -1 (background).

    gt_boxes [B, M, 4] corners; gt_classes [B, M], rows of class -1 are padding and match
    nothing; anchors [N, 4] (yc, xc, h, w).
    """
    gt_boxes, gt_classes = _padded(gt_boxes, gt_classes)
    return _match(gt_boxes, gt_classes, anchors, threshold, force_match_for_each_row)


def _match(gt_boxes, gt_classes, anchors, threshold, force_match_for_each_row):
    import tensorflow as tf

    from tfmobile.detection import boxes

    anchors = tf.convert_to_tensor(anchors, tf.float32)
    valid = gt_classes >= 0  # [B, M]
    overlaps = boxes.tf_iou(gt_boxes, boxes.tf_to_corners(anchors)[None])  # [B, M, N]
    overlaps = tf.where(valid[..., None], overlaps, -1.0)  # padding never wins an anchor
    best_row = tf.argmax(overlaps, axis=1, output_type=tf.int32)  # [B, N]
    matches = tf.where(tf.reduce_max(overlaps, axis=1) >= threshold, best_row, -1)
    if force_match_for_each_row:
        best_column = tf.argmax(overlaps, axis=2, output_type=tf.int32)  # [B, M]
        claims = tf.one_hot(best_column, tf.shape(anchors)[0], dtype=tf.int32)  # [B, M, N]
        claims *= tf.cast(valid, tf.int32)[..., None]
        forced = tf.reduce_max(claims, axis=1) > 0  # [B, N]
        first_claim = tf.argmax(claims, axis=1, output_type=tf.int32)  # first row on ties
        matches = tf.where(forced, first_claim, matches)
    return matches


def targets(gt_boxes, gt_classes, anchors, num_classes: int, *,
            threshold: float = MATCH_THRESHOLD, force_match_for_each_row: bool = True,
            background_as_zeros: bool = True):
    """(box targets [B, N, 4], class targets [B, N, num_classes + 1], matched [B, N] bool) for
    the anchors' matches (match()); box targets are 0 on unmatched anchors, class targets all
    0 (or [1, 0, ...] without background_as_zeros)."""
    import tensorflow as tf

    from tfmobile.detection import boxes

    gt_boxes, gt_classes = _padded(gt_boxes, gt_classes)
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    matches = _match(gt_boxes, gt_classes, anchors, threshold, force_match_for_each_row)
    matched = matches >= 0
    rows = tf.maximum(matches, 0)
    matched_boxes = tf.gather(gt_boxes, rows, batch_dims=1)  # [B, N, 4]
    matched_classes = tf.gather(gt_classes, rows, batch_dims=1)  # [B, N]
    box_targets = tf.where(matched[..., None], boxes.tf_encode(matched_boxes, anchors[None]), 0.0)
    columns = tf.where(matched, matched_classes + 1, -1 if background_as_zeros else 0)
    class_targets = tf.one_hot(columns, num_classes + 1, dtype=tf.float32)  # -1: all zeros
    return box_targets, class_targets, matched


def sigmoid_focal_loss(labels, logits, *, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA):
    """Elementwise focal loss: sigmoid cross-entropy scaled by (1 - p_t)^gamma, so the many
    easy (well-classified) entries count little, and by alpha for target 1, 1 - alpha for 0."""
    import tensorflow as tf

    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    p = tf.sigmoid(logits)
    p_t = labels * p + (1 - labels) * (1 - p)
    weight = labels * alpha + (1 - labels) * (1 - alpha)
    return weight * tf.pow(1 - p_t, gamma) * cross_entropy


def smooth_l1(difference, delta: float = HUBER_DELTA):
    """Elementwise Huber loss: quadratic within delta of 0, linear beyond (slope delta)."""
    import tensorflow as tf

    absolute = tf.abs(difference)
    quadratic = tf.minimum(absolute, delta)
    return 0.5 * quadratic ** 2 + delta * (absolute - quadratic)


def ssd_loss(box_encodings, class_logits, gt_boxes, gt_classes, anchors, *,
             alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA,
             threshold: float = MATCH_THRESHOLD, background_as_zeros: bool = True,
             box_weight: float = 1.0, cls_weight: float = 1.0):
    """(total, {"box": localization, "cls": classification}), scalars, for a batch.

    box_encodings [B, N, 4] (ty, tx, th, tw) and class_logits [B, N, C + 1] (column 0
    background, before the sigmoid) are the model's; gt_boxes [B, M, 4] corners; gt_classes
    [B, M] int32 0-based, padded with -1; anchors [N, 4] (yc, xc, h, w).
    """
    import tensorflow as tf

    box_encodings = tf.convert_to_tensor(box_encodings, tf.float32)
    class_logits = tf.convert_to_tensor(class_logits, tf.float32)
    num_classes = class_logits.shape[-1] - 1
    box_targets, class_targets, matched = targets(gt_boxes, gt_classes, anchors, num_classes,
                                                  threshold=threshold,
                                                  background_as_zeros=background_as_zeros)
    positive = tf.cast(matched, tf.float32)
    normalizer = tf.stop_gradient(tf.maximum(tf.reduce_sum(positive), 1.0))
    per_anchor = tf.reduce_sum(smooth_l1(box_encodings - box_targets), axis=-1)  # [B, N]
    box = box_weight * tf.reduce_sum(per_anchor * positive) / (normalizer * CODE_SIZE)
    cls = cls_weight * tf.reduce_sum(
        sigmoid_focal_loss(class_targets, class_logits, alpha=alpha, gamma=gamma)) / normalizer
    return box + cls, {"box": box, "cls": cls}


def ssd_loss_fn(anchors, **loss_args):
    """The loss for tfmobile.detection.training.fit: loss_fn(outputs, gt_boxes, gt_classes),
    where outputs are the train model's (box_encodings, class_logits), as a sequence or as a
    dict with those keys. Takes ssd_loss's keyword arguments."""
    import numpy as np

    anchors = np.asarray(anchors, np.float32)

    def loss_fn(outputs, gt_boxes, gt_classes):
        if isinstance(outputs, dict):
            box_encodings, class_logits = outputs["box_encodings"], outputs["class_logits"]
        else:
            box_encodings, class_logits = outputs
        return ssd_loss(box_encodings, class_logits, gt_boxes, gt_classes, anchors, **loss_args)

    return loss_fn


def _padded(gt_boxes, gt_classes):
    """The ground truth with one more padding row, so that a batch without boxes (M = 0) still
    has an axis to take argmax over; padding changes no match."""
    import tensorflow as tf

    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    gt_classes = tf.cast(tf.convert_to_tensor(gt_classes), tf.int32)
    return (tf.pad(gt_boxes, [[0, 0], [0, 1], [0, 0]]),
            tf.pad(gt_classes, [[0, 0], [0, 1]], constant_values=-1))

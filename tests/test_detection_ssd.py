"""SSD anchors, box coder, matcher, loss and the detection trainer (tfmobile/detection).

Values are checked against hand computations from the TF OD API's rules (reference/detection.md
§3). The last checks train a stand-in SSD (three strided convolutions, predictors on an 8x8 and
a 4x4 feature map, anchors from ssd_anchors for those grids) to overfit one 64 px image with
two boxes: detections decoded from its outputs find both boxes only if the anchor order, coder,
matcher, loss and trainer agree with each other.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmobile.detection import anchors as anchor_gen
from tfmobile.detection import boxes, ssd_loss, training

# --- anchors -------------------------------------------------------------------------------


def test_the_configs_grids_and_anchor_counts():
    assert anchor_gen.ssd_grids(300) == [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    assert anchor_gen.ssd_grids(320) == [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    assert anchor_gen.anchors_per_location() == [3, 6, 6, 6, 6, 6]
    assert anchor_gen.ssd_anchors(anchor_gen.ssd_grids(300)).shape == (1917, 4)
    assert anchor_gen.ssd_anchors(anchor_gen.ssd_grids(320)).shape == (2034, 4)
    assert anchor_gen.ssd_anchors(anchor_gen.ssd_grids(320)).dtype == np.float32


def test_anchor_values_by_hand():
    a = anchor_gen.ssd_anchors(anchor_gen.ssd_grids(300)).astype(np.float64)
    c0, r2 = 0.5 / 19, math.sqrt(2)
    # Layer 0, cell (0, 0): (0.1, 1), (0.2, 2), (0.2, 0.5); height = s / sqrt(a), width s sqrt(a).
    np.testing.assert_allclose(a[0], [c0, c0, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(a[1], [c0, c0, 0.2 / r2, 0.2 * r2], rtol=1e-6)
    np.testing.assert_allclose(a[2], [c0, c0, 0.2 * r2, 0.2 / r2], rtol=1e-6)
    # Cell (0, 1) follows (x before the next row), then row 1 after 19 cells.
    np.testing.assert_allclose(a[3], [c0, 1.5 / 19, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(a[19 * 3], [1.5 / 19, c0, 0.1, 0.1], rtol=1e-6)
    # Layer 1 starts after 19*19*3 = 1083: scale 0.2 + 0.75 / 5 = 0.35, ratios 1, 2, 0.5, 3, 1/3,
    # then the interpolated sqrt(0.35 * 0.5).
    s1, c1, r3 = 0.35, 0.5 / 10, math.sqrt(3)
    np.testing.assert_allclose(a[1083:1089], [
        [c1, c1, s1, s1], [c1, c1, s1 / r2, s1 * r2], [c1, c1, s1 * r2, s1 / r2],
        [c1, c1, s1 / r3, s1 * r3], [c1, c1, s1 * r3, s1 / r3],
        [c1, c1, math.sqrt(s1 * 0.5), math.sqrt(s1 * 0.5)]], rtol=1e-6)
    # The last layer (1x1) interpolates towards 1.0, and its anchors are not clipped.
    np.testing.assert_allclose(a[-6], [0.5, 0.5, 0.95, 0.95], rtol=1e-6)
    np.testing.assert_allclose(a[-1], [0.5, 0.5, math.sqrt(0.95), math.sqrt(0.95)], rtol=1e-6)
    assert a[-3, 3] > 1  # 0.95 * sqrt(3) wide


def test_anchor_order_is_a_predictors_reshape():
    """A conv output [1, H, W, A*4] reshaped to [1, H*W*A, 4] and concatenated over layers lines
    up with the anchors: channels 4a..4a+3 of cell (y, x) belong to anchor a of that cell."""
    grids = [(4, 3), (2, 2)]
    anchors = anchor_gen.ssd_anchors(grids)
    per_cell = anchor_gen.anchors_per_location(num_layers=2)
    pairs = anchor_gen.layer_boxes(num_layers=2)
    flat = []
    for (h, w), count, layer in zip(grids, per_cell, pairs, strict=True):
        feature = np.zeros((1, h, w, count * 4), np.float32)  # what a predictor would output
        for y in range(h):
            for x in range(w):
                for k, (scale, aspect) in enumerate(layer):
                    feature[0, y, x, 4 * k:4 * k + 4] = [(y + 0.5) / h, (x + 0.5) / w,
                                                         scale / math.sqrt(aspect),
                                                         scale * math.sqrt(aspect)]
        flat.append(tf.reshape(feature, [1, -1, 4]))
    np.testing.assert_allclose(tf.concat(flat, axis=1)[0], anchors, rtol=1e-6)


# --- boxes ---------------------------------------------------------------------------------


def test_iou_by_hand():
    a = np.array([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
    b = np.array([[0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.5, 0.5]])
    expected = [[0.0625 / (0.25 + 0.25 - 0.0625), 1.0], [0.0, 0.0]]
    np.testing.assert_allclose(boxes.iou(a, b), expected)
    np.testing.assert_allclose(boxes.tf_iou(tf.constant(a, tf.float32), tf.constant(b, tf.float32)),
                               expected, rtol=1e-6)


def test_encode_decode_round_trip_and_coder_scales():
    rng = np.random.default_rng(0)
    anchors = anchor_gen.ssd_anchors(anchor_gen.ssd_grids(320))
    top_left = rng.uniform(0, 0.7, (len(anchors), 2))
    corners = np.concatenate([top_left, top_left + rng.uniform(0.02, 0.3, (len(anchors), 2))], -1)
    encoded = boxes.encode(corners, anchors)
    np.testing.assert_allclose(boxes.decode(encoded, anchors), corners, atol=1e-6)
    tf_encoded = boxes.tf_encode(tf.constant(corners, tf.float32), tf.constant(anchors))
    np.testing.assert_allclose(tf_encoded, encoded, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(boxes.tf_decode(tf_encoded, tf.constant(anchors)), corners, atol=1e-5)
    # Against an anchor (yc, xc, h, w) = (0.5, 0.5, 0.2, 0.4): moved down by 0.02 (a tenth of its
    # height: ty 1) and twice as wide (tw = 5 ln 2).
    anchor = np.array([0.5, 0.5, 0.2, 0.4])
    np.testing.assert_allclose(boxes.encode([0.42, 0.1, 0.62, 0.9], anchor),
                               [1.0, 0.0, 0.0, 5 * math.log(2)], atol=1e-6)
    np.testing.assert_allclose(boxes.to_centres(boxes.to_corners(anchor)), anchor)
    np.testing.assert_allclose(boxes.clip([-0.1, 0.2, 1.3, 0.9]), [0.0, 0.2, 1.0, 0.9])


# --- matcher and loss ----------------------------------------------------------------------


def centre_form(corners):
    return boxes.to_centres(np.array(corners, np.float32)).astype(np.float32)


def test_a_box_equal_to_an_anchor_matches_it():
    anchors = anchor_gen.ssd_anchors([(4, 4)], num_layers=1, min_scale=0.3,
                                     reduce_boxes_in_lowest_layer=False)
    gt = boxes.to_corners(anchors[[37, 70]])[None].astype(np.float32)  # [1, 2, 4]
    matches = ssd_loss.match(gt, np.array([[3, 1]], np.int32), anchors).numpy()[0]
    assert matches[37] == 0 and matches[70] == 1
    box_targets, class_targets, matched = ssd_loss.targets(gt, [[3, 1]], anchors, num_classes=4)
    np.testing.assert_allclose(box_targets[0, 37], [0, 0, 0, 0], atol=1e-5)
    np.testing.assert_array_equal(class_targets[0, 37], [0, 0, 0, 0, 1])  # class 3 is column 4
    np.testing.assert_array_equal(class_targets[0, 70], [0, 0, 1, 0, 0])
    unmatched = ~matched.numpy()[0]
    assert unmatched.sum() == len(anchors) - np.sum(matches >= 0)
    assert (class_targets.numpy()[0][unmatched] == 0).all()  # encode_background_as_zeros
    assert (box_targets.numpy()[0][unmatched] == 0).all()
    _, one_hot_background, _ = ssd_loss.targets(gt, [[3, 1]], anchors, num_classes=4,
                                                 background_as_zeros=False)
    assert (one_hot_background.numpy()[0][unmatched] == [1, 0, 0, 0, 0]).all()
    np.testing.assert_array_equal(one_hot_background[0, 37], [0, 0, 0, 0, 1])


def test_iou_049_matches_only_when_forced():
    gt = np.array([[[0.0, 0.0, 1.0, 0.49]]], np.float32)  # IoU 0.49 with the whole image
    whole, tall = centre_form([0, 0, 1, 1]), centre_form([0, 0, 1, 0.6])  # tall: IoU 0.817
    far = centre_form([0.9, 0.9, 1.0, 1.0])
    classes = np.array([[0]], np.int32)
    # A better anchor exists: the whole-image anchor stays background.
    assert list(ssd_loss.match(gt, classes, np.stack([whole, tall, far])).numpy()[0]) == [-1, 0, -1]
    # It is the box's best anchor: forced.
    assert list(ssd_loss.match(gt, classes, np.stack([whole, far])).numpy()[0]) == [0, -1]
    assert list(ssd_loss.match(gt, classes, np.stack([whole, far]),
                               force_match_for_each_row=False).numpy()[0]) == [-1, -1]


def test_padding_matches_nothing_and_a_shared_best_anchor_goes_to_the_first_box():
    anchors = np.stack([centre_form([0, 0, 0.5, 0.5]), centre_form([0.5, 0.5, 1, 1])])
    gt = np.array([[[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]],       # padding row equal to anchor 1
                   [[0, 0, 0.5, 0.4], [0, 0, 0.4, 0.5]]], np.float32)  # both prefer anchor 0
    matches = ssd_loss.match(gt, np.array([[2, -1], [0, 1]], np.int32), anchors).numpy()
    np.testing.assert_array_equal(matches, [[0, -1], [0, -1]])
    # A batch without any box: everything is background, and the loss is finite.
    empty = ssd_loss.match(np.zeros((1, 0, 4), np.float32), np.zeros((1, 0), np.int32), anchors)
    np.testing.assert_array_equal(empty, [[-1, -1]])


def test_focal_loss_by_hand():
    ln2 = math.log(2)
    labels = tf.constant([1.0, 0.0, 1.0, 0.0])
    logits = tf.constant([0.0, 0.0, 2.0, 2.0])
    p = 1 / (1 + math.exp(-2))
    expected = [0.75 * 0.25 * ln2, 0.25 * 0.25 * ln2,
                0.75 * (1 - p) ** 2 * -math.log(p), 0.25 * p ** 2 * -math.log(1 - p)]
    np.testing.assert_allclose(ssd_loss.sigmoid_focal_loss(labels, logits), expected, rtol=1e-5)
    np.testing.assert_allclose(ssd_loss.smooth_l1(tf.constant([0.5, -2.0])), [0.125, 1.5])
    assert 1 / (1 + math.exp(-ssd_loss.CLASS_BIAS_INIT)) == pytest.approx(0.01, abs=1e-4)


def test_ssd_loss_by_hand():
    """Two anchors, one class; the box equals anchor 0 (class 0), anchor 1 is background.
    Logits 0 everywhere: an entry costs (1 - 0.5)^2 ln 2 times 0.75 where its target is 1 and
    0.25 where it is 0. Targets: anchor 0 [0, 1], anchor 1 [0, 0] (background as zeros), so
    0.75 + 3 * 0.25 of them; the second image has no box, 4 * 0.25, and the sum is divided by
    the batch's single match. Box: anchor 0 predicts ty = 2 against a target of 0, Huber 1.5,
    over the code size 4; unmatched anchors' encodings are ignored."""
    anchors = np.stack([centre_form([0, 0, 0.5, 0.5]), centre_form([0.5, 0.5, 1, 1])])
    gt_boxes = np.array([[[0, 0, 0.5, 0.5]], [[0, 0, 0, 0]]], np.float32)
    gt_classes = np.array([[0], [-1]], np.int32)
    encodings = np.array([[[2.0, 0, 0, 0], [9.0, 9, 9, 9]], [[9.0, 9, 9, 9]] * 2], np.float32)
    logits = np.zeros((2, 2, 2), np.float32)
    entry = 0.25 * math.log(2)
    total, parts = ssd_loss.ssd_loss(encodings, logits, gt_boxes, gt_classes, anchors)
    assert float(parts["box"]) == pytest.approx(1.5 / 4, rel=1e-5)
    assert float(parts["cls"]) == pytest.approx((0.75 + 3 * 0.25 + 4 * 0.25) * entry, rel=1e-5)
    assert float(total) == pytest.approx(float(parts["box"]) + float(parts["cls"]), rel=1e-6)
    loss_fn = ssd_loss.ssd_loss_fn(anchors)
    assert float(loss_fn((encodings, logits), gt_boxes, gt_classes)[0]) == pytest.approx(float(total))
    # With a one-hot background row, anchor 1's [1, 0] and the second image's two [1, 0] rows.
    _, parts = ssd_loss.ssd_loss(encodings, logits, gt_boxes, gt_classes, anchors,
                                 background_as_zeros=False)
    assert float(parts["cls"]) == pytest.approx(3 * (0.75 + 0.25) * entry + (0.75 + 0.25) * entry,
                                                rel=1e-5)


# --- trainer -------------------------------------------------------------------------------

SIZE = 64
GRIDS = [(8, 8), (4, 4)]
# Scales chosen for the boxes below (sides 0.3-0.5), so several anchors match each at IoU 0.5.
ANCHOR_ARGS = dict(min_scale=0.35, max_scale=0.5, reduce_boxes_in_lowest_layer=False)
GT_BOXES = np.array([[0.1, 0.1, 0.45, 0.4], [0.4, 0.5, 0.9, 0.95]], np.float32)
GT_CLASSES = np.array([0, 1], np.int32)
COLOURS = np.array([[1.0, -0.8, -0.8], [-0.8, -0.6, 1.0]], np.float32)  # red, blue in [-1, 1]


def standin_ssd(num_classes: int = 2) -> keras.Model:
    """Three stride-2 convolutions to an 8x8 map and one more to 4x4; on each, a 3x3 box and
    class predictor, reshaped and concatenated in the anchors' order (seeded)."""
    keras.utils.set_random_seed(0)
    per_cell = anchor_gen.anchors_per_location(num_layers=len(GRIDS), **ANCHOR_ARGS)
    x = inputs = keras.Input((SIZE, SIZE, 3))
    features = []
    for channels in (16, 32, 32, 48):
        x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        features.append(x)
    encodings, logits = [], []
    for feature, count in zip(features[2:], per_cell, strict=True):
        box = keras.layers.Conv2D(count * 4, 3, padding="same")(feature)
        cls = keras.layers.Conv2D(count * (num_classes + 1), 3, padding="same",
                                  bias_initializer=keras.initializers.Constant(
                                      ssd_loss.CLASS_BIAS_INIT))(feature)
        encodings.append(keras.layers.Reshape((-1, 4))(box))
        logits.append(keras.layers.Reshape((-1, num_classes + 1))(cls))
    return keras.Model(inputs, [keras.layers.Concatenate(axis=1)(encodings),
                                keras.layers.Concatenate(axis=1)(logits)])


def painted(gt_boxes, gt_classes, size: int = SIZE) -> np.ndarray:
    """A grey image with each box filled in its class's colour."""
    image = np.zeros((size, size, 3), np.float32)
    for (y0, x0, y1, x1), c in zip(gt_boxes, gt_classes, strict=True):
        image[round(y0 * size):round(y1 * size), round(x0 * size):round(x1 * size)] = COLOURS[c]
    return image


def one_image_batches(batch: int = 2):
    image = painted(GT_BOXES, GT_CLASSES)
    while True:
        yield (np.repeat(image[None], batch, 0), np.repeat(GT_BOXES[None], batch, 0),
               np.repeat(GT_CLASSES[None], batch, 0))


@pytest.mark.slow
def test_the_trainer_overfits_one_image(tmp_path):
    anchors = anchor_gen.ssd_anchors(GRIDS, **ANCHOR_ARGS)
    model = standin_ssd()
    assert model.outputs[0].shape[1] == len(anchors)
    checkpoint = tmp_path / "ssd.weights.h5"
    history = training.fit(model, ssd_loss.ssd_loss_fn(anchors), one_image_batches(),
                           steps_per_epoch=50, epochs=4, learning_rate=3e-3, warmup_steps=20,
                           checkpoint=checkpoint, progress=False)
    assert len(history["loss"]) == 4 and history["best_epoch"] == 4 and history["best_val"] is None
    assert history["loss"][-1] < 0.2 * history["loss"][0], history["loss"]

    image = painted(GT_BOXES, GT_CLASSES)[None]
    encodings, logits = (np.asarray(t) for t in model(image, training=False))
    scores = 1 / (1 + np.exp(-logits[0]))
    decoded = boxes.decode(encodings[0], anchors)
    for gt_box, c in zip(GT_BOXES, GT_CLASSES, strict=True):
        best = np.argmax(scores[:, c + 1])  # the top detection of the box's class
        assert scores[best, c + 1] > 0.5, scores[best]
        assert boxes.iou(decoded[best][None], gt_box[None])[0, 0] > 0.5, (decoded[best], gt_box)

    reloaded = standin_ssd()
    reloaded.load_weights(checkpoint)
    for a, b in zip(reloaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_best_validation_epoch_is_kept(tmp_path):
    anchors = anchor_gen.ssd_anchors(GRIDS, **ANCHOR_ARGS)
    model = standin_ssd()
    scores = iter([0.2, 0.9, 0.5])
    kept = []

    def val_fn(m):
        kept.append(m.get_weights())
        return next(scores)

    history = training.fit(model, ssd_loss.ssd_loss_fn(anchors), one_image_batches(),
                           steps_per_epoch=3, epochs=3, learning_rate=1e-3, warmup_steps=0,
                           val_fn=val_fn, checkpoint=tmp_path / "ssd.weights.h5", progress=False)
    assert history["val"] == [0.2, 0.9, 0.5] and history["best_epoch"] == 2
    for a, b in zip(model.get_weights(), kept[1], strict=True):
        np.testing.assert_array_equal(a, b)
    reloaded = standin_ssd()
    reloaded.load_weights(tmp_path / "ssd.weights.h5")
    for a, b in zip(reloaded.get_weights(), kept[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_diverging_loss_stops_with_a_clear_error():
    anchors = anchor_gen.ssd_anchors(GRIDS, **ANCHOR_ARGS)
    model = standin_ssd()
    before = [w.numpy() for w in model.trainable_weights]
    loss = ssd_loss.ssd_loss_fn(anchors)

    def poisoned(outputs, gt_boxes, gt_classes):
        total, parts = loss(outputs, gt_boxes, gt_classes)
        return total * float("nan"), parts

    with pytest.raises(training.TrainingDiverged, match="before any epoch finished"):
        training.fit(model, poisoned, one_image_batches(), steps_per_epoch=2, epochs=1,
                     learning_rate=1e-3, warmup_steps=0, progress=False)
    for a, b in zip(model.trainable_weights, before, strict=True):  # the NaN step's gradients
        np.testing.assert_array_equal(a.numpy(), b)                # were not applied


def test_the_schedule_warms_up_then_decays():
    schedule = training.learning_rate_schedule(0.4, total_steps=100, warmup_steps=10)
    assert float(schedule(0)) == pytest.approx(0.4 / 3, rel=1e-5)
    assert float(schedule(5)) == pytest.approx(0.4 / 3 + 0.5 * (0.4 - 0.4 / 3), rel=1e-5)
    assert float(schedule(10)) == pytest.approx(0.4, rel=1e-5)
    assert float(schedule(55)) == pytest.approx(0.2, rel=1e-5)  # halfway through the cosine
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-7)

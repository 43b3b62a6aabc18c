"""The YOLOv5-style detector: the deploy decode reproduces YOLOv5's boxes through the
TFLite_Detection_PostProcess formula, targets follow YOLOv5's assignment, the loss, targets and
decode agree (one image overfit to its boxes), and the deployed graph converts (float, and int8
with the network in one XNNPACK partition)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from converters import litert
from tfmobile.detection import yolo

SIZE = 128
CLASSES = 2
WIDTHS = (32, 64, 128)
# Two planted rectangles (normalized yxyx) and their classes, each painted in its own colour.
TRUTH = np.array([[0.15, 0.20, 0.45, 0.42], [0.50, 0.45, 0.90, 0.95]], np.float32)
TRUTH_CLASSES = np.array([0, 1], np.int32)
COLOURS = ((1.0, -1.0, -1.0), (-1.0, 1.0, -1.0))


def standin_backbone(size: int = SIZE) -> keras.Model:
    """Five stride-2 conv + BN + SiLU layers with the zoo backbones' output dict. BN momentum
    0.9 so that its moving statistics catch up within the overfit's 200 steps."""
    image = keras.Input((size, size, 3))
    x, features = image, {}
    for i, (filters, level) in enumerate([(16, None), (24, None), (32, "C3"), (48, "C4"), (64, "C5")]):
        x = layers.Conv2D(filters, 3, 2, padding="same", use_bias=False, name=f"bb{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bb{i}_bn")(x)
        x = layers.Activation("silu", name=f"bb{i}_act")(x)
        if level:
            features[level] = x
    return keras.Model(image, features, name="standin")


def op_decode(box_encodings: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """TFLite_Detection_PostProcess's decode (scales 10, 10, 5, 5) -> yxyx."""
    ty, tx, th, tw = np.moveaxis(box_encodings.astype(np.float64), -1, 0)
    ya, xa, ha, wa = np.moveaxis(anchors.astype(np.float64), -1, 0)
    yc, xc = ty / 10 * ha + ya, tx / 10 * wa + xa
    h, w = np.exp(th / 5) * ha, np.exp(tw / 5) * wa
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], -1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of a [N, 4] with every box of b [M, 4] (yxyx)."""
    top = np.maximum(a[:, None, 0], b[None, :, 0])
    left = np.maximum(a[:, None, 1], b[None, :, 1])
    bottom = np.minimum(a[:, None, 2], b[None, :, 2])
    right = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def detect(box_encodings, class_scores, anchors, threshold=0.5, iou_threshold=0.5):
    """The post-processing op by hand: decode, each anchor's best class (column 0 skipped),
    greedy NMS. -> (boxes [K, 4], classes [K], scores [K])."""
    boxes = op_decode(box_encodings, anchors)
    classes = class_scores[:, 1:].argmax(1)
    scores = class_scores[:, 1:].max(1)
    kept = []
    for i in np.argsort(-scores):
        if scores[i] < threshold:
            break
        if all(iou(boxes[i:i + 1], boxes[j:j + 1])[0, 0] < iou_threshold for j in kept):
            kept.append(i)
    return boxes[kept], classes[kept], scores[kept]


def planted_image() -> np.ndarray:
    image = np.random.default_rng(0).uniform(-0.3, 0.3, (SIZE, SIZE, 3)).astype(np.float32)
    for box, cls in zip(TRUTH, TRUTH_CLASSES, strict=True):
        y0, x0, y1, x1 = np.round(box * SIZE).astype(int)
        image[y0:y1, x0:x1] = COLOURS[cls]
    return image


# ---------------------------------------------------------------------------------------------
# Anchors and decode


def test_anchors_are_cell_centres_and_pixel_anchors():
    anchors = yolo.anchors(SIZE)
    grids = [SIZE // 8, SIZE // 16, SIZE // 32]
    assert anchors.shape == (3 * sum(g * g for g in grids), 4)
    # First row: P3, cell (0, 0), anchor 0 = (w 10, h 13) px.
    np.testing.assert_allclose(anchors[0], [4 / SIZE, 4 / SIZE, 13 / SIZE, 10 / SIZE], rtol=1e-6)
    # Row r, column c, anchor a of P3 sits at index (r * W + c) * 3 + a.
    r, c, a = 3, 5, 2
    np.testing.assert_allclose(anchors[(r * grids[0] + c) * 3 + a],
                               [(r + 0.5) * 8 / SIZE, (c + 0.5) * 8 / SIZE, 23 / SIZE, 33 / SIZE],
                               rtol=1e-6)
    # The last is P5's largest anchor, in pixels whatever the input size.
    np.testing.assert_allclose(anchors[-1, 2:], [326 / SIZE, 373 / SIZE], rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of 32"):
        yolo.anchors(100)


def random_raws(rng, size=SIZE, classes=CLASSES, batch=1):
    raws = [rng.normal(0, 2, (batch, size // s, size // s, 3 * (5 + classes))).astype(np.float32)
            for s in yolo.STRIDES]
    for raw in raws:  # sizes above the deploy floor: 2 sigma >= 0.3
        view = raw.reshape(*raw.shape[:3], 3, 5 + classes)
        view[..., 2:4] = rng.uniform(np.log(0.15 / 0.85), 4, view[..., 2:4].shape)
    return raws


def test_op_decode_of_the_encodings_is_yolov5_decode():
    rng = np.random.default_rng(0)
    raws = random_raws(rng)
    box_encodings, class_scores = yolo.YoloDecode(SIZE, CLASSES)(raws)
    boxes, obj, cls = yolo.decode_numpy(raws, SIZE)
    decoded = op_decode(np.asarray(box_encodings)[0], yolo.anchors(SIZE))
    np.testing.assert_allclose(decoded, boxes[0], atol=1e-5)
    scores = np.asarray(class_scores)[0]
    np.testing.assert_array_equal(scores[:, 0], 0.0)  # background: zeros
    np.testing.assert_allclose(scores[:, 1:], obj[0, :, None] * cls[0], atol=1e-6)


def test_sizes_below_the_floor_come_out_at_the_floor():
    raws = [np.full((1, SIZE // s, SIZE // s, 3 * (5 + CLASSES)), -8.0, np.float32)
            for s in yolo.STRIDES]
    box_encodings, _ = yolo.YoloDecode(SIZE, CLASSES)(raws)
    anchors = yolo.anchors(SIZE)
    decoded = op_decode(np.asarray(box_encodings)[0], anchors)
    np.testing.assert_allclose(decoded[:, 2] - decoded[:, 0], anchors[:, 2] * yolo.MIN_TWO_SIGMA**2,
                               rtol=1e-4)


def test_upsample_is_nearest_neighbour():
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(yolo.UpsampleNearest2x()(x)),
                                  np.asarray(layers.UpSampling2D(2)(x)))


# ---------------------------------------------------------------------------------------------
# Targets and loss


def box_at(cy, cx, h, w, grid):
    """A normalized yxyx box centred at grid position (cy, cx) of a `grid`-cell level, h x w
    pixels at SIZE."""
    y, x = cy / grid, cx / grid
    return [y - h / SIZE / 2, x - w / SIZE / 2, y + h / SIZE / 2, x + w / SIZE / 2]


def assigned(boxes, level):
    """{(anchor, row, col)} the level assigns the boxes to."""
    grid = SIZE // yolo.STRIDES[level]
    t = yolo.build_targets(np.array([boxes], np.float32), np.zeros((1, len(boxes)), np.int32),
                           (grid, grid), yolo.YOLO_ANCHORS_PX[level], yolo.STRIDES[level])
    mask, cell = t["mask"].numpy(), t["cell"].numpy()
    return {(a, *cell[b, m, a, o]) for b, m, a, o in zip(*np.nonzero(mask), strict=True)}


def test_box_at_a_cell_centre_goes_to_that_cell_only():
    # 12 x 14 px: within 4x of all three P3 anchors, of none at P4 ((30, 61) is 4.4x taller).
    grid = SIZE // 8
    box = box_at(6.5, 9.5, 14, 12, grid)
    assert assigned([box], 0) == {(a, 6, 9) for a in range(3)}
    assert assigned([box], 1) == set() and assigned([box], 2) == set()


def test_box_off_centre_also_goes_to_the_nearer_neighbours():
    grid = SIZE // 8
    # Centre in the upper-right quarter of cell (6, 9): also the cell above and the one right.
    box = box_at(6.25, 9.75, 14, 12, grid)
    assert assigned([box], 0) == {(a, r, c) for a in range(3) for r, c in [(6, 9), (5, 9), (6, 10)]}
    # Lower-left quarter: below and left.
    box = box_at(6.75, 9.25, 14, 12, grid)
    assert assigned([box], 0) == {(a, r, c) for a in range(3) for r, c in [(6, 9), (7, 9), (6, 8)]}
    # Within a cell of the border: no neighbour on that side (YOLOv5's gxy > 1 rule).
    box = box_at(0.25, 15.75, 14, 12, grid)
    assert assigned([box], 0) == {(a, 0, 15) for a in range(3)}


def test_a_large_box_goes_to_the_coarse_levels():
    # 100 x 110 px (h x w): all of P4's and P5's anchors within 4x; none of P3's ((33, 23) is
    # 4.3x shorter).
    box = box_at(2.5, 2.5, 100, 110, SIZE // 32)
    assert assigned([box], 0) == set()
    assert {a for a, _, _ in assigned([box], 1)} == {0, 1, 2}
    assert {a for a, _, _ in assigned([box], 2)} == {0, 1, 2}
    padded = [box, [0, 0, 0, 0]]
    grid = SIZE // 16
    t = yolo.build_targets(np.array([padded], np.float32), np.array([[1, -1]], np.int32),
                           (grid, grid), yolo.YOLO_ANCHORS_PX[1], 16)
    assert not t["mask"].numpy()[0, 1].any()  # padding assigns nothing


def test_loss_traces_once_for_any_box_count_and_handles_none():
    model = yolo.build_yolo(standin_backbone(), num_classes=CLASSES, width=WIDTHS, name="yolo_t")
    images = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    outputs = model(images)
    loss = tf.function(lambda b, c: yolo.yolo_loss(outputs, b, c, SIZE, CLASSES),
                       input_signature=[tf.TensorSpec([2, None, 4]), tf.TensorSpec([2, None], tf.int32)])
    total, parts = loss(np.zeros((2, 0, 4), np.float32), np.zeros((2, 0), np.int32))
    assert float(parts["box"]) == 0 and float(parts["cls"]) == 0 and float(parts["obj"]) > 0
    boxes = np.array([[TRUTH[0], TRUTH[1], [0, 0, 0, 0]]] * 2, np.float32)
    total, parts = loss(boxes, np.array([[0, 1, -1], [1, 0, -1]], np.int32))
    assert all(float(v) > 0 for v in parts.values())
    np.testing.assert_allclose(float(total), 2 * sum(float(v) for v in parts.values()), rtol=1e-6)
    gains = yolo.loss_gains(320, 80)
    assert gains == pytest.approx({"box": 0.05, "cls": 0.5, "obj": 0.25})


def test_single_class_has_no_class_term_and_scores_are_objectness():
    model = yolo.build_yolo(standin_backbone(), num_classes=1, width=WIDTHS, name="yolo_t")
    assert yolo.num_classes(model) == 1
    images = np.zeros((1, SIZE, SIZE, 3), np.float32)
    _, parts = yolo.yolo_loss(model(images), TRUTH[None, :1], np.zeros((1, 1), np.int32), SIZE, 1)
    assert float(parts["cls"]) == 0
    deployed = yolo.deploy_model(model)(images)
    scores = np.asarray(deployed["class_scores"])[0]
    assert scores.shape[1] == 2 and scores[:, 1].max() < 0.05  # the objectness prior


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["shufflenet_v2", "mobilenet_v3_small"])
def test_builds_on_zoo_backbones(backbone):
    from tfmobile.models import registry

    model = yolo.build_yolo(registry.build_backbone(backbone, input_size=SIZE), num_classes=3,
                            name=f"yolo_{backbone}")
    assert [model.output[k].shape[1:] for k in yolo.LEVELS] == [(16, 16, 24), (8, 8, 24), (4, 4, 24)]
    deployed = yolo.deploy_model(model)
    assert deployed.output["box_encodings"].shape[1:] == (len(yolo.model_anchors(model)), 4)
    assert deployed.output["class_scores"].shape[1:] == (len(yolo.model_anchors(model)), 4)
    bias = model.get_layer("head_P3").get_weights()[1].reshape(3, 8)
    np.testing.assert_allclose(bias[:, 4], np.log(8 / 80**2), rtol=1e-6)
    np.testing.assert_allclose(bias[:, 5:], np.log(0.6 / (3 - 0.99999)), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# One image overfit: loss, targets and decode agree


@pytest.fixture(scope="module")
def overfit():
    """The stand-in detector after 200 Adam steps on the planted image; with its losses."""
    keras.utils.set_random_seed(0)
    model = yolo.build_yolo(standin_backbone(), num_classes=CLASSES, width=WIDTHS, name="yolo_t")
    image = planted_image()
    optimizer = keras.optimizers.Adam(3e-3)

    @tf.function
    def step(images, boxes, classes):
        with tf.GradientTape() as tape:
            total, _ = yolo.yolo_loss(model(images, training=True), boxes, classes, SIZE, CLASSES)
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return total

    losses = [float(step(image[None], TRUTH[None], TRUTH_CLASSES[None])) for _ in range(200)]
    return model, image, losses


def assert_finds_the_planted_boxes(box_encodings, class_scores):
    boxes, classes, scores = detect(box_encodings, class_scores, yolo.anchors(SIZE))
    assert len(boxes) == 2, (boxes, classes, scores)
    overlap = iou(boxes, TRUTH)
    matched = overlap.argmax(1)
    assert sorted(matched) == [0, 1]
    assert overlap.max(1).min() > 0.8
    np.testing.assert_array_equal(classes, TRUTH_CLASSES[matched])


@pytest.mark.slow
@pytest.mark.xdist_group("yolo_overfit")
def test_overfit_loss_falls_and_detects_the_boxes(overfit):
    model, image, losses = overfit
    assert np.mean(losses[-10:]) < 0.15 * losses[0]
    outputs = yolo.deploy_model(model)(image[None])
    assert_finds_the_planted_boxes(np.asarray(outputs["box_encodings"])[0],
                                   np.asarray(outputs["class_scores"])[0])


@pytest.mark.slow
@pytest.mark.xdist_group("yolo_overfit")
def test_float_tflite_detects_the_boxes(overfit):
    model, image, _ = overfit
    deployed = yolo.deploy_model(model)
    content = tf.lite.TFLiteConverter.from_keras_model(deployed).convert()
    runner = litert.load(content).get_signature_runner()
    (input_name,) = runner.get_input_details()
    outputs = runner(**{input_name: image[None]})
    keras_outputs = deployed(image[None])
    for name in ("box_encodings", "class_scores"):
        np.testing.assert_allclose(outputs[name], np.asarray(keras_outputs[name]), atol=1e-4)
    assert_finds_the_planted_boxes(outputs["box_encodings"][0], outputs["class_scores"][0])


def partitions_of(interpreter) -> tuple[list[list[dict]], list[dict]]:
    """The ops of each delegate partition (converters.litert.execution's analysis), and all."""
    nodes = interpreter._get_ops_details()
    kernels = [n for n in nodes if n["op_name"] == "DELEGATE"]
    ops = [n for n in nodes if n["op_name"] != "DELEGATE"]
    found = []
    for kernel in kernels:
        delegated = litert._delegated_ops([kernel], ops)
        found.append([op for op in ops if op["index"] in delegated])
    return found, ops


# The int8 network's partitions: tests/test_detection_cli.py converts yolo_shufflenet_v2 to int8
# and checks them (one XNNPACK partition for the network, LOG and MAXIMUM expected on the CPU).

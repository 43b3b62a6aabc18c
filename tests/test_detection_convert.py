"""Detector conversion: an integer network, then TFLite_Detection_PostProcess, as the consumers
(ML Kit, the Task Library, Coral's examples) read it.

The op is written by flatbuffer surgery; TF's own route (experimental_implements, the OD API's
TF2 export) is the independent check that its attributes are what TF writes, and a numpy
decode + NMS checks what it computes.
"""

import keras
import numpy as np
import pytest

from converters import detection, litert

pytestmark = pytest.mark.xdist_group("detection_convert")  # the module's conversions are made once

CLASSES, PER_CELL, GRIDS = 3, 2, (8, 4)


def toy_detector(as_list: bool = False) -> keras.Model:
    """Four strided convs on a 64x64 input and an SSD-style head on the 8x8 and 4x4 maps.
    He-scaled weights keep the activations alive, and the score head's scale and -3 bias give
    sigmoid scores from near 0 to above 0.9 with a few dozen anchors per image above 0.3, as a
    trained detector's."""
    keras.utils.set_random_seed(0)

    def init(scale):
        return keras.initializers.VarianceScaling(scale, "fan_in", "normal")

    inputs = keras.Input((64, 64, 3), batch_size=1)
    x = inputs
    maps = []
    for filters in (16, 32, 32, 32):
        x = keras.layers.Conv2D(filters, 3, 2, padding="same", activation="relu6",
                                kernel_initializer=init(2.0))(x)
        maps.append(x)
    boxes, scores = [], []
    for feature in maps[2:]:  # 8x8, 4x4
        b = keras.layers.Conv2D(PER_CELL * 4, 1, kernel_initializer=init(2.0))(feature)
        s = keras.layers.Conv2D(PER_CELL * (CLASSES + 1), 1, kernel_initializer=init(16.0),
                                bias_initializer=keras.initializers.Constant(-3.0))(feature)
        boxes.append(keras.layers.Reshape((-1, 4))(b))
        scores.append(keras.layers.Reshape((-1, CLASSES + 1))(s))
    box = keras.layers.Concatenate(axis=1, name="box_encodings")(boxes)
    score = keras.layers.Activation("sigmoid", name="class_scores")(
        keras.layers.Concatenate(axis=1)(scores))
    if as_list:  # named by its output layers, exported as output_0, output_1
        return keras.Model(inputs, [box, score])
    return keras.Model(inputs, {"box_encodings": box, "class_scores": score})


def grid_anchors(grids=GRIDS) -> np.ndarray:
    """[N, 4] (yc, xc, h, w): PER_CELL square anchors (1 and 2 cells wide) per cell, in the
    head's order (row, column, anchor)."""
    found = [[(i + 0.5) / g, (j + 0.5) / g, s / g, s / g]
             for g in grids for i in range(g) for j in range(g) for s in (1.0, 2.0)]
    return np.array(found, np.float32)


SSDLITE_GRIDS = (16, 8, 4, 2, 1, 1)  # six maps, as SSDLite's (the last two both 1x1 here)


def ssdlite_like_detector() -> keras.Model:
    """What the toy leaves out and SSDLite MobileNet V3 has: hard-swish activations and six
    feature maps, so each head joins six tensors (XNNPACK joins at most five)."""
    keras.utils.set_random_seed(0)

    def init():  # a new one per layer: an unseeded Keras initializer repeats its draw
        return keras.initializers.VarianceScaling(2.0, "fan_in", "normal")

    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = inputs
    maps = []
    for stride in (2, 2, 2, 2, 2, 1):
        x = keras.layers.Conv2D(16, 3, stride, padding="same", activation="hard_swish",
                                kernel_initializer=init())(x)
        maps.append(x)
    boxes, scores = [], []
    for feature in maps:
        b = keras.layers.Conv2D(PER_CELL * 4, 1, kernel_initializer=init())(feature)
        s = keras.layers.Conv2D(PER_CELL * (CLASSES + 1), 1, kernel_initializer=init())(feature)
        boxes.append(keras.layers.Reshape((-1, 4))(b))
        scores.append(keras.layers.Reshape((-1, CLASSES + 1))(s))
    box = keras.layers.Concatenate(axis=1, name="box_encodings")(boxes)
    score = keras.layers.Activation("sigmoid", name="class_scores")(
        keras.layers.Concatenate(axis=1)(scores))
    return keras.Model(inputs, {"box_encodings": box, "class_scores": score})


@pytest.fixture(scope="module")
def toy(photo_batch):
    """The detector, its anchors, calibration and evaluation batches (the bundled photographs,
    alternately)."""
    batch = photo_batch(64)
    return toy_detector(), grid_anchors(), batch[0::2], batch[1::2]


@pytest.fixture(scope="module")
def int8(toy):
    model, anchors, calibration, evaluation = toy
    return detection.convert_detector(model, anchors, calibration, evaluation, mode="int8",
                                      postprocess=detection.PostProcess(CLASSES))


def _tensor_types(content: bytes) -> tuple:
    model = litert.read_model(content)
    return model, model.subgraphs[0], [litert.op_name(code) for code in model.operatorCodes], \
        litert.enum_names("TensorType")


# --- the op against TF's own route, and against numpy --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("postprocess", [
    detection.PostProcess(CLASSES, nms_score_threshold=0.05),
    detection.PostProcess(CLASSES, max_detections=10, use_regular_nms=True,
                          nms_score_threshold=0.2, nms_iou_threshold=0.45),
], ids=["fast_nms", "regular_nms"])
def test_the_op_equals_what_tfs_own_export_route_writes(toy, postprocess):
    model, anchors, _, evaluation = toy
    ours = detection.convert_detector(model, anchors, evaluation, evaluation, mode="float32",
                                      postprocess=postprocess).content
    theirs = detection.convert_with_tf_postprocess(model, anchors, postprocess)

    # The attributes, byte for byte (TF's MLIR nms_utils wrote theirs).
    assert detection.postprocess_op(ours)[2] == detection.postprocess_op(theirs)[2]
    # The anchors constant.
    for content in (ours, theirs):
        model_t = litert.read_model(content)
        graph = model_t.subgraphs[0]
        anchor_tensor = graph.tensors[detection.postprocess_op(content)[0][2]]
        stored = np.frombuffer(model_t.buffers[anchor_tensor.buffer].data.tobytes(), np.float32)
        np.testing.assert_array_equal(stored.reshape(-1, 4), anchors)
    # The outputs on the same images: identical, ours read by position, theirs through the op.
    found, expected = detection.run_detector(ours, evaluation), \
        detection.tf_route_outputs(theirs, evaluation)
    assert sum(d.count for d in found) > len(evaluation)  # detections to compare
    for a, b in zip(found, expected, strict=True):
        assert a.count == b.count
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def _obvious_case():
    """Two separated boxes and a duplicate of the first (IoU 0.80 with it, lower score), with
    two fillers below the threshold, one of them background-heavy."""
    anchors = np.array([[0.25, 0.25, 0.3, 0.3],    # A: class 1, 0.9
                        [0.75, 0.75, 0.3, 0.3],    # B: class 2, 0.7, moved and scaled below
                        [0.27, 0.26, 0.3, 0.3],    # duplicate of A: class 1, 0.8
                        [0.5, 0.5, 0.2, 0.2],      # filler: background 0.99
                        [0.1, 0.9, 0.1, 0.1]],     # filler: every class 0.2
                       np.float32)
    scores = np.array([[0.05, 0.1, 0.9, 0.1],
                       [0.05, 0.1, 0.2, 0.7],
                       [0.05, 0.1, 0.8, 0.1],
                       [0.99, 0.1, 0.1, 0.1],
                       [0.05, 0.2, 0.2, 0.2]], np.float32)
    encodings = np.zeros((5, 4), np.float32)
    encodings[1] = [1.0, -1.0, 5 * np.log(2.0), 0.0]  # B: centre +0.03, -0.03; height doubled
    return anchors, encodings, scores


def test_the_op_and_numpy_agree_on_a_case_whose_answer_is_obvious():
    anchors, encodings, scores = _obvious_case()
    assert detection.iou([0.1, 0.1, 0.4, 0.4], [0.12, 0.11, 0.42, 0.41]) > 0.6  # A, duplicate
    postprocess = detection.PostProcess(CLASSES, max_detections=5)
    (op,) = detection.run_postprocess(detection.postprocess_model(anchors, postprocess),
                                      encodings[None], scores[None])
    expected_boxes = np.array([[0.1, 0.1, 0.4, 0.4], [0.48, 0.57, 1.08, 0.87]], np.float32)
    assert op.count == 2  # the duplicate suppressed, both fillers under 0.3
    np.testing.assert_array_equal(op.classes, [1, 2])
    np.testing.assert_allclose(op.scores, [0.9, 0.7], atol=1e-7)
    np.testing.assert_allclose(op.boxes, expected_boxes, atol=1e-6)

    reference = detection.reference_detections(encodings, scores, anchors, postprocess)
    assert reference.count == 2
    np.testing.assert_array_equal(reference.classes, op.classes)
    np.testing.assert_allclose(reference.boxes, op.boxes, atol=1e-6)

    # Above the IoU (0.80 > 0.6) the duplicate goes; with the threshold above it, it stays.
    (kept,) = detection.run_postprocess(
        detection.postprocess_model(anchors, detection.PostProcess(CLASSES, nms_iou_threshold=0.9)),
        encodings[None], scores[None])
    assert kept.count == 3 and list(kept.classes) == [1, 1, 2]


def test_the_op_and_numpy_agree_on_random_encodings_and_scores():
    rng = np.random.default_rng(0)
    n = 300
    anchors = np.concatenate([rng.uniform(0.1, 0.9, (n, 2)), rng.uniform(0.05, 0.4, (n, 2))],
                             axis=1).astype(np.float32)
    encodings = rng.normal(0, 0.7, (4, n, 4)).astype(np.float32)
    scores = rng.uniform(0, 1, (4, n, CLASSES + 1)).astype(np.float32)
    postprocess = detection.PostProcess(CLASSES, max_detections=40, nms_score_threshold=0.2,
                                        nms_iou_threshold=0.5)
    found = detection.run_postprocess(detection.postprocess_model(anchors, postprocess),
                                      encodings, scores)
    for i, op in enumerate(found):
        reference = detection.reference_detections(encodings[i], scores[i], anchors, postprocess)
        assert op.count == reference.count == 40  # enough candidates to fill it
        np.testing.assert_array_equal(op.classes, reference.classes)
        np.testing.assert_array_equal(op.scores, reference.scores)
        np.testing.assert_allclose(op.boxes, reference.boxes, atol=1e-5)


def test_a_higher_score_threshold_keeps_exactly_the_low_thresholds_detections_above_it():
    """Why the deployment artifact (0.3) and an mAP run (the OD API's 1e-8) tell one story."""
    rng = np.random.default_rng(1)
    n = 250
    anchors = np.concatenate([rng.uniform(0.1, 0.9, (n, 2)), rng.uniform(0.05, 0.4, (n, 2))],
                             axis=1).astype(np.float32)
    encodings = rng.normal(0, 0.7, (3, n, 4)).astype(np.float32)
    scores = (rng.uniform(0, 1, (3, n, CLASSES + 1)) ** 10).astype(np.float32)  # mostly low
    low, high = (detection.run_postprocess(detection.postprocess_model(anchors, pp), encodings, scores)
                 for pp in (detection.PostProcess.od_api(CLASSES), detection.PostProcess(CLASSES)))
    for everything, deployed in zip(low, high, strict=True):
        assert everything.count == 100 and 0 < deployed.count < 100
        keep = everything.scores >= 0.3
        for a, b in zip(deployed[:3], (everything.boxes[keep], everything.classes[keep],
                                       everything.scores[keep]), strict=True):
            np.testing.assert_array_equal(a, b)


def test_read_detections_refuses_what_is_not_a_detectors_output():
    m = 5
    good = [np.zeros((1, m, 4), np.float32), np.zeros((1, m), np.float32),
            np.zeros((1, m), np.float32), np.array([2.0], np.float32)]
    assert detection.read_detections(good).count == 2
    assert detection.read_detections(good).boxes.shape == (2, 4)
    with pytest.raises(ValueError, match="4 outputs"):
        detection.read_detections(good[:2])
    with pytest.raises(ValueError, match="output 0"):  # scores first: the TF2 export's order
        detection.read_detections([good[2], good[0], good[1], good[3]])
    with pytest.raises(ValueError, match="outside"):
        detection.read_detections([*good[:3], np.array([7.0], np.float32)])


# --- the int8 artifact ---------------------------------------------------------------------------


@pytest.mark.slow
def test_int8_network_is_integer_up_to_the_dequantizes_and_each_output_has_its_own_scale(int8):
    model, graph, names, types = _tensor_types(int8.content)
    op_inputs = set(detection.postprocess_op(int8.content)[0][:2])
    dequantizes = 0
    for op in graph.operators:
        name = names[op.opcodeIndex]
        tensors = [graph.tensors[i] for i in [*op.inputs, *op.outputs] if i >= 0]
        if name == detection.OP_NAME:
            assert {types[t.type] for t in tensors} == {"FLOAT32"}
        elif name == "DEQUANTIZE":
            dequantizes += 1
            assert types[graph.tensors[op.inputs[0]].type] == "INT8"
            assert int(op.outputs[0]) in op_inputs  # each feeds the op, nothing else is float
        else:
            assert {types[t.type] for t in tensors} <= {"INT8", "INT32"}, name
    assert dequantizes == 2
    assert types[graph.tensors[graph.inputs[0]].type] == "INT8"
    assert int8.graph["fully_integer"] and int8.graph["network_float_ops"] == []

    scales = int8.quantization["network_outputs"]
    box, score = scales["box_encodings"], scales["class_scores"]
    assert box["dtype"] == score["dtype"] == "INT8"
    assert score["scale"] == pytest.approx(1 / 256) and score["zero_point"] == -128  # sigmoid's
    assert box["scale"] != score["scale"]
    assert int8.warnings == []
    # Nothing to rewrite in the toy: no hard-swish, two maps.
    assert int8.quantization["hard_swish_expanded_to_add_mul"] == 0
    assert int8.graph["concatenations_split"] == 0


@pytest.mark.slow
def test_four_float_outputs_in_the_consumers_order(int8, toy):
    _, anchors, _, evaluation = toy
    interpreter = litert.load(int8.content)
    outputs = interpreter.get_output_details()
    assert [d["name"] for d in outputs] == list(detection.OUTPUT_NAMES)
    assert [list(d["shape"]) for d in outputs] == [[1, 100, 4], [1, 100], [1, 100], [1]]
    assert all(d["dtype"] == np.float32 for d in outputs)
    assert list(litert.output_names(interpreter).values()) == list(detection.OUTPUT_NAMES)

    found = detection.run_detector(int8.content, evaluation)
    assert len(found) == len(evaluation)
    counts = [d.count for d in found]
    assert 0 < sum(counts) and max(counts) <= 100
    for d in found:
        assert np.all(d.scores >= 0.3) and np.all(np.diff(d.scores) <= 0)  # thresholded, sorted
        assert np.all(d.boxes[:, 2] >= d.boxes[:, 0]) and np.all(d.boxes[:, 3] >= d.boxes[:, 1])
        assert set(d.classes.tolist()) <= set(range(CLASSES))


@pytest.mark.slow
def test_the_network_is_one_xnnpack_partition_and_the_op_runs_on_the_cpu(int8):
    assert int8.execution["partitions"] == 1
    assert int8.execution["ops_outside_delegate"] == {detection.OP_NAME: 1}
    assert int8.execution["unexpected_outside"] == {}
    assert any("expected" in note and detection.OP_NAME in note for note in int8.notes)
    assert int8.warnings == []


@pytest.mark.slow
def test_fidelity_against_the_float_keras_model(int8, toy):
    _, _, _, evaluation = toy
    found = int8.fidelity
    assert found["samples"] == len(evaluation)
    assert found["score_sqnr_db"] > 15
    assert found["box_encoding_sqnr_db"] > 15
    assert found["boxes_compared"] >= len(evaluation)
    assert found["box_iou_mean"] > 0.95
    assert found["box_iou_agreement_0.9"] > 0.9
    assert found["float_detections"] > len(evaluation)  # the toy's scores reach 0.3
    assert found["detection_agreement"] > 0.8


@pytest.mark.slow
def test_raw_outputs_give_the_two_network_outputs_uint8_input_and_a_list_output_model(toy):
    _, anchors, calibration, evaluation = toy
    result = detection.convert_detector(toy_detector(as_list=True), anchors, calibration,
                                        evaluation, mode="int8", io_type="uint8", postprocess=None)
    interpreter = litert.load(result.content)
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    outputs = interpreter.get_output_details()
    assert [list(d["shape"]) for d in outputs] == [[1, len(anchors), 4], [1, len(anchors), CLASSES + 1]]
    assert list(litert.output_names(interpreter).values()) == list(detection.NETWORK_OUTPUTS)
    assert detection.OP_NAME not in litert.op_counts(result.content)
    # uint8 <-> int8 at the edges (the input's and both outputs'), on the CPU; said, expected.
    assert result.execution["partitions"] == 1
    assert result.execution["ops_outside_delegate"] == {"QUANTIZE": 3}
    assert result.execution["unexpected_outside"] == {} and result.warnings == []
    assert any("uint8" in note for note in result.notes)
    assert result.graph["fully_integer"]
    assert result.fidelity["score_sqnr_db"] > 15 and "detection_agreement" not in result.fidelity
    with pytest.raises(ValueError, match="raw outputs"):
        detection.run_detector(result.content, evaluation[:1])


@pytest.mark.slow
def test_uint8_input_detector_dequantizes_the_int8_outputs_directly(toy, int8):
    model, anchors, calibration, evaluation = toy
    result = detection.convert_detector(model, anchors, calibration, evaluation, mode="int8",
                                        io_type="uint8", postprocess=detection.PostProcess(CLASSES))
    _, graph, names, types = _tensor_types(result.content)
    dequantized = [types[graph.tensors[op.inputs[0]].type] for op in graph.operators
                   if names[op.opcodeIndex] == "DEQUANTIZE"]
    assert dequantized == ["INT8", "INT8"]  # the quantizer's int8 -> uint8 outputs bypassed
    assert result.execution["partitions"] == 1
    assert result.execution["ops_outside_delegate"] == {"QUANTIZE": 1, detection.OP_NAME: 1}
    assert result.warnings == [] and result.graph["fully_integer"]
    assert result.graph["input"]["dtype"] == "uint8"
    # The same network behind a uint8 door (zero point + 128): the int8 model's detections.
    for a, b in zip(detection.run_detector(result.content, evaluation),
                    detection.run_detector(int8.content, evaluation), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_float16_detector_keeps_the_op_and_float_fidelity(toy):
    model, anchors, _, evaluation = toy
    result = detection.convert_detector(model, anchors, evaluation, evaluation, mode="float16",
                                        postprocess=detection.PostProcess(CLASSES))
    assert litert.op_counts(result.content)[detection.OP_NAME] == 1
    assert result.quantization is None and result.execution["partitions"] == 1
    assert result.fidelity["score_sqnr_db"] > 40
    assert result.fidelity["detection_agreement"] > 0.95


@pytest.mark.slow
def test_hard_swish_and_six_way_joins_are_rewritten_so_the_network_is_one_partition(photo_batch):
    model, anchors = ssdlite_like_detector(), grid_anchors(SSDLITE_GRIDS)
    batch = photo_batch(32)
    calibration, evaluation = batch[0::2], batch[1::2]
    pp = detection.PostProcess(CLASSES)
    result = detection.convert_detector(model, anchors, calibration, evaluation, postprocess=pp)
    assert result.quantization["hard_swish_expanded_to_add_mul"] == 6
    assert "expand_hard_swish" in result.quantization["steps"]
    assert result.graph["concatenations_split"] == 2  # boxes and scores
    assert "HARD_SWISH" not in result.graph["ops"]
    assert result.execution["partitions"] == 1
    assert result.execution["ops_outside_delegate"] == {detection.OP_NAME: 1}
    assert result.warnings == [] and result.graph["fully_integer"]
    assert result.fidelity["score_sqnr_db"] > 15 and result.fidelity["box_encoding_sqnr_db"] > 15

    # Kept as HARD_SWISH on request: each one leaves XNNPACK, and the report says so.
    kept = detection.convert_detector(model, anchors, calibration, evaluation, postprocess=pp,
                                      expand_hard_swish=False)
    assert kept.quantization["hard_swish_expanded_to_add_mul"] == 0
    assert kept.execution["ops_outside_delegate"]["HARD_SWISH"] == 6
    assert kept.execution["partitions"] > 1 and kept.warnings

    # Float: the joins are split all the same (the limit is on inputs, not types).
    floating = detection.convert_detector(model, anchors, evaluation, evaluation, mode="float32",
                                          postprocess=pp)
    assert floating.graph["concatenations_split"] == 2 and floating.quantization is None
    assert floating.execution["partitions"] == 1 and floating.warnings == []

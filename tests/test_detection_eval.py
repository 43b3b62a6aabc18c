"""COCO evaluation through pycocotools on cases whose answer is known by hand, and the PNG
drawings of detections (colours where the boxes are, files written whole or not at all)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from tfmobile.detection import coco_eval, draw
from tfmobile.detection.coco_eval import ImageDetections, ImageTruth

NAMES = ["person", "dog"]
BOX = [0.2, 0.2, 0.6, 0.6]  # on 480x640: 256x192 px, COCO's "large"


def truth(image_id=1, boxes=(BOX,), classes=(0,), height=480, width=640):
    return ImageTruth(image_id, height, width, np.array(boxes, np.float32).reshape(-1, 4), list(classes))


def dets(image_id, boxes, classes, scores):
    return ImageDetections(image_id, np.array(boxes, np.float32).reshape(-1, 4), classes, scores)


def test_perfect_detections_score_one_everywhere_measured():
    gt = [truth(1), truth(2, boxes=[BOX, [0.5, 0.1, 0.9, 0.4]], classes=[0, 1])]
    found = [dets(1, [BOX], [0], [0.9]), dets(2, [BOX, [0.5, 0.1, 0.9, 0.4]], [0, 1], [0.8, 0.7])]
    result = coco_eval.evaluate(gt, found, NAMES)
    for key in ("map", "map_50", "map_75", "map_large", "ar_1", "ar_10", "ar_100"):
        assert result[key] == pytest.approx(1.0), key
    # No ground truth of those sizes: pycocotools' -1 becomes None, not a number to average.
    assert result["map_small"] is None and result["map_medium"] is None
    assert result["per_class_ap50"] == {"person": pytest.approx(1.0), "dog": pytest.approx(1.0)}
    assert (result["images"], result["ground_truth_boxes"], result["detections"]) == (2, 3, 3)


def test_a_shifted_box_passes_iou_050_and_fails_075():
    # A 0.5 x 0.5 box moved by 0.1 across: overlap 0.4 x 0.5, union 0.6 x 0.5, IoU 2/3.
    # It matches at the thresholds 0.50, 0.55, 0.60, 0.65 of the ten: mAP 4/10.
    box = [0.2, 0.2, 0.7, 0.7]
    result = coco_eval.evaluate([truth(boxes=[box])], [dets(1, [[0.2, 0.3, 0.7, 0.8]], [0], [0.9])], NAMES)
    assert result["map_50"] == pytest.approx(1.0)
    assert result["map_75"] == pytest.approx(0.0)
    assert result["map"] == pytest.approx(0.4)


def test_a_false_positive_scored_above_the_true_one_halves_ap():
    # Ranked: FP (0.9), TP (0.8). Precision 0 then 1/2 at recall 1; made monotone it is 1/2 at
    # every one of the 101 recall points: AP 0.5 at every IoU threshold.
    found = [dets(1, [[0.7, 0.7, 0.9, 0.9], BOX], [0, 0], [0.9, 0.8])]
    result = coco_eval.evaluate([truth()], found, NAMES)
    assert result["map_50"] == pytest.approx(0.5)
    assert result["map"] == pytest.approx(0.5)
    assert result["ar_100"] == pytest.approx(1.0)
    assert result["ar_1"] == pytest.approx(0.0)  # the best-scoring detection alone is the FP


def test_the_101_point_interpolation_by_hand():
    # Two people; ranked TP (0.9), FP (0.8), TP (0.7): recall 1/2, 1/2, 1, precision 1, 1/2, 2/3.
    # Monotone precision is 1 up to recall 1/2 (51 of the recall points 0, 0.01, .., 1) and 2/3
    # after (50 points): AP = (51 + 50 * 2/3) / 101, not the area 0.8333 under the curve.
    second = [0.65, 0.65, 0.95, 0.95]
    gt = [truth(boxes=[BOX, second], classes=[0, 0])]
    found = [dets(1, [BOX, [0.0, 0.0, 0.1, 0.1], second], [0, 0, 0], [0.9, 0.8, 0.7])]
    result = coco_eval.evaluate(gt, found, NAMES)
    assert result["map_50"] == pytest.approx((51 + 50 * 2 / 3) / 101)


def test_a_false_positive_on_an_image_without_ground_truth_counts():
    gt = [truth(1), truth(2, boxes=[], classes=[])]
    found = [dets(1, [BOX], [0], [0.8]), dets(2, [BOX], [0], [0.9])]
    result = coco_eval.evaluate(gt, found, NAMES)
    assert result["map_50"] == pytest.approx(0.5)
    assert (result["images"], result["ground_truth_boxes"], result["detections"]) == (2, 1, 2)


def test_no_detections_at_all_score_zero_rather_than_crash(capsys):
    result = coco_eval.evaluate([truth(1), truth(2)], [], NAMES)
    assert result["map"] == 0.0 and result["map_50"] == 0.0 and result["ar_100"] == 0.0
    assert result["map_small"] is None
    assert result["per_class_ap50"] == {"person": 0.0, "dog": None}  # no dog to find
    assert result["detections"] == 0
    empty_entries = coco_eval.evaluate([truth(1)], [dets(1, [], [], [])], NAMES)
    assert empty_entries["map"] == 0.0
    assert capsys.readouterr().out == ""  # pycocotools' progress lines are kept off stdout


def test_per_class_ap_and_coco_sparse_category_ids():
    gt = [truth(boxes=[BOX, [0.5, 0.1, 0.9, 0.4]], classes=[0, 1])]
    found = [dets(1, [BOX], [0], [0.9])]  # the dog is missed
    plain = coco_eval.evaluate(gt, found, NAMES)
    sparse = coco_eval.evaluate(gt, found, NAMES, category_ids=[1, 18])  # COCO's person, dog
    for result in (plain, sparse):
        assert result["per_class_ap50"] == {"person": pytest.approx(1.0), "dog": pytest.approx(0.0)}
        assert result["map_50"] == pytest.approx(0.5)
    # Sparse ids sorted in another order than the classes still land on the right names.
    swapped = coco_eval.evaluate(gt, found, NAMES, category_ids=[18, 1])
    assert swapped["per_class_ap50"] == plain["per_class_ap50"]


def test_summary_lines_are_pycocotools_twelve():
    result = coco_eval.evaluate([truth()], [dets(1, [BOX], [0], [0.9])], NAMES)
    lines = coco_eval.summary_lines(result)
    assert len(lines) == 12
    assert lines[0].startswith(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]")
    assert lines[0].endswith("= 1.000") and lines[3].endswith("= -1.000")


def test_inputs_that_cannot_be_evaluated_are_refused():
    with pytest.raises(ValueError, match="class ids"):
        coco_eval.evaluate([truth()], [dets(1, [BOX], [2], [0.9])], NAMES)
    with pytest.raises(ValueError, match="no ground truth entry"):
        coco_eval.evaluate([truth(1)], [dets(7, [BOX], [0], [0.9])], NAMES)
    with pytest.raises(ValueError, match="twice"):
        coco_eval.evaluate([truth(1), truth(1)], [], NAMES)
    with pytest.raises(ValueError, match="scores"):
        dets(1, [BOX], [0], [0.9, 0.8])
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        ImageTruth(1, 10, 10, np.zeros((2, 3)), [0, 0])
    # The postprocess op's float class ids are accepted when whole.
    assert dets(1, [BOX], np.array([1.0], np.float32), [0.5]).classes.tolist() == [1]


# Drawing.

def drawn(tmp_path, **kwargs):
    image = np.zeros((100, 100, 3), np.uint8)
    path = draw.draw_detections(image, np.array([[0.2, 0.3, 0.8, 0.7]], np.float32), [1], [0.87], NAMES,
                                tmp_path / "d.png", **kwargs)
    with Image.open(path) as png:
        return np.asarray(png.convert("RGB"))


def test_a_box_is_drawn_in_its_class_colour(tmp_path):
    pixels = drawn(tmp_path)
    scale = draw.display_scale(100, 100)
    assert pixels.shape == (100 * scale, 100 * scale, 3)  # small images are enlarged
    colour = draw.class_color(1)
    y0, x0, y1, x1 = (round(v * 100 * scale) for v in (0.2, 0.3, 0.8, 0.7))
    mid_x, mid_y = (x0 + x1) // 2, (y0 + y1) // 2
    for y, x in ((y1, mid_x), (mid_y, x0), (mid_y, x1)):  # bottom, left, right edges
        assert tuple(pixels[y, x]) == colour, (y, x)
    assert tuple(pixels[mid_y, mid_x]) == (0, 0, 0)  # outlined, not filled
    # The "dog 0.87" tag sits above the top edge, filled with the same colour.
    assert tuple(pixels[y0 - 2, x0 + 1]) == colour
    assert os.listdir(tmp_path) == ["d.png"]  # no temporary left beside it


def test_low_scores_are_left_out_and_truth_is_dashed_white_and_black(tmp_path):
    pixels = drawn(tmp_path, score_threshold=0.9, truth_boxes=[[0.1, 0.1, 0.9, 0.9]])
    assert not np.any(np.all(pixels == draw.class_color(1), axis=-1))  # 0.87 < 0.9
    scale = draw.display_scale(100, 100)
    left_edge = pixels[10 * scale:90 * scale, round(0.1 * 100 * scale)]
    colours = {tuple(p) for p in left_edge}
    assert (255, 255, 255) in colours and (0, 0, 0) in colours


def test_nothing_is_left_when_the_write_or_the_drawing_fails(tmp_path, monkeypatch):
    image = np.zeros((32, 32, 3), np.uint8)
    boxes = np.array([[0.2, 0.2, 0.8, 0.8]], np.float32)
    with pytest.raises(OSError):  # the directory cannot be written to (it does not exist)
        draw.draw_detections(image, boxes, [0], [0.9], NAMES, tmp_path / "missing" / "d.png")
    if os.geteuid() != 0:  # root writes into read-only directories
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError):
            draw.draw_detections(image, boxes, [0], [0.9], NAMES, locked / "d.png")
        assert os.listdir(locked) == []
        locked.chmod(0o700)
        locked.rmdir()
    target = tmp_path / "d.png"
    target.write_bytes(b"old")

    def refuse(*args):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", refuse)
        with pytest.raises(OSError):
            draw.draw_detections(image, boxes, [0], [0.9], NAMES, target)
    with pytest.raises(ValueError):  # drawing fails: mismatched scores
        draw.draw_detections(image, boxes, [0], [0.9, 0.1], NAMES, target)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["d.png"]  # no temporary file


def test_contact_sheet_puts_titled_tiles_side_by_side(tmp_path):
    image = np.full((64, 48, 3), 200, np.uint8)
    boxes = np.array([[0.1, 0.1, 0.9, 0.9]], np.float32)
    float_png = draw.draw_detections(image, boxes, [0], [0.9], NAMES, tmp_path / "float.png")
    int8 = draw.render_detections(image, boxes, [1], [0.6], NAMES)
    sheet = draw.contact_sheet([float_png, int8, image], tmp_path / "sheet.png", columns=2,
                               titles=["float", "int8", "photo"])
    with Image.open(sheet) as png:
        width, height = png.size
        pixels = np.asarray(png.convert("RGB"))
    with Image.open(float_png) as png:
        tile = png.size
    assert width >= 2 * tile[0] and height >= 2 * tile[1]  # two columns, two rows
    assert np.any(np.all(pixels == draw.class_color(0), axis=-1))
    assert np.any(np.all(pixels == draw.class_color(1), axis=-1))
    with pytest.raises(ValueError, match="titles"):
        draw.contact_sheet([image], tmp_path / "x.png", titles=["a", "b"])

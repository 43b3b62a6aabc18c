"""tfmobile.train and tfmobile.evaluate with detectors, as users run them."""

import json
import subprocess
import sys

import pytest

from converters import detection
from tfmobile.detection import datasets
from tfmobile_core import records


def run(module, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_train_then_convert_then_evaluate_on_a_coco_file(tmp_path):
    # The composed set written as COCO JSON, the format users have.
    coco = datasets.write_coco(datasets.composed_set(12, size=96, split="val"),
                               tmp_path / "val.json", images_dir=tmp_path / "val")
    weights = tmp_path / "det.weights.h5"
    result = run("tfmobile.train", "--model", "ssdlite_mobilenet_v3_small", "--input_size", "96",
                 "--data", "composed:16", "--val_data", str(coco), "--epochs", "1",
                 "--batch_size", "8", "--output", str(weights))
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout and weights.exists()
    names = json.loads((tmp_path / "det.classes.json").read_text())
    assert names == list(datasets.composed_set(1).class_names)

    result = run("tfmobile.convert", "--model", "ssdlite_mobilenet_v3_small", "--input_size", "96",
                 "--int8", "--weights", str(weights), "--calibration_samples", "8",
                 "--eval_samples", "4", "--score_threshold", "0.01", "--output_dir",
                 str(tmp_path / "art"))
    assert result.returncode == 0, result.stderr
    (tflite,) = (tmp_path / "art").glob("*.tflite")
    report = records.ConversionReport.read(tflite.with_suffix(".json"))
    det = report.detection
    # The artifact consumers read: a fully integer network, the op, four float outputs in order;
    # the network one XNNPACK partition (hard-swish expanded, six-way joins split).
    assert det["graph"]["fully_integer"]
    assert [o["key"] for o in det["graph"]["outputs"]] == list(detection.OUTPUT_NAMES)
    assert det["execution"]["partitions"] == 1
    assert det["execution"]["ops_outside_delegate"] == {detection.OP_NAME: 1}
    assert det["warnings"] == [] and det["fidelity"]["box_iou_mean"] > 0.8

    result = run("tfmobile.evaluate", "--tflite", str(tflite), "--reference", "keras",
                 "--model", "ssdlite_mobilenet_v3_small", "--input_size", "96", "--weights",
                 str(weights), "--data", str(coco), "--draw", str(tmp_path / "drawn"), "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["images"] == 12 and 0 <= found["map_50"] <= 1
    assert "float Keras" in found["reference"]["model"]
    assert set(found["change_points"]) == {"map", "map_50"}
    assert len(found["drawings"]) == 4 and all(p.endswith(".png") for p in found["drawings"])


@pytest.mark.parametrize("args,message", [
    (["--data", "nowhere.json"], "nowhere.json"),
    (["--data", "composed:x"], "composed:N takes a number of images"),
    (["--data", "composed", "--epochs", "0", "--quantization_aware_epochs", "1"],
     "--quantization_aware_epochs alone fine-tunes trained --weights"),
])
def test_bad_detection_training_input(tmp_path, args, message):
    result = run("tfmobile.train", "--model", "ssdlite_mobilenet_v3_small", *args,
                 "--output", str(tmp_path / "w.weights.h5"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1

"""Detectors through the commands users run: tfmobile.convert (int8 network + the post-processing
op, or raw outputs), tfmobile.summary, and their bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from converters import detection, litert
from tfmobile_core import records

SMALL = ["--input_size", "96", "--num_classes", "3", "--calibration_samples", "16",
         "--eval_samples", "8"]


def run(module, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_int8_detector_is_the_artifact_consumers_read(tmp_path):
    # YOLO here; SSDLite's int8 artifact is checked the same way in
    # test_detection_train_evaluate.py (trained weights) and test_bench_detection.py.
    model = "yolo_shufflenet_v2"
    result = run("tfmobile.convert", "--model", model, "--int8", *SMALL,
                 "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    stem = f"{model}_1_96_c3_int8"
    content = (tmp_path / f"{stem}.tflite").read_bytes()
    report = records.ConversionReport.read(tmp_path / f"{stem}.json")
    det = report.detection
    # A fully integer network, then the op, then four float outputs in the consumers' order.
    assert det["graph"]["fully_integer"] and det["graph"]["input"]["dtype"] == "int8"
    assert [o["key"] for o in det["graph"]["outputs"]] == list(detection.OUTPUT_NAMES)
    assert litert.op_counts(content)[detection.OP_NAME] == 1
    interpreter = litert.load(content)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)
    for found in detection.run_detector(interpreter, images):
        assert found.boxes.shape == (found.count, 4) and found.count <= 100
        assert set(found.classes.tolist()) <= {0, 1, 2}
    # The network is one XNNPACK partition; the op runs on the CPU, as expected, and so do
    # YOLO's size decoding's LOG and MAXIMUM, with the multiply after them a second partition.
    execution = det["execution"]
    assert execution["ops_outside_delegate"] == {"LOG": 1, "MAXIMUM": 1, detection.OP_NAME: 1}
    assert execution["partitions"] == 2 and execution["unexpected_outside"] == {}
    assert det["warnings"] == []
    assert report.detection["fidelity"]["score_sqnr_db"] > 10
    assert "detections" == report.to_json()["model"]["output"]
    embedded = litert.read_metadata(content, records.METADATA_NAME)
    assert records.ArtifactId.from_json(embedded) == report.artifact_id


@pytest.mark.slow
def test_yolo_edgetpu_profile_keeps_its_log_in_float(tmp_path):
    """An int8 LOG is version 2, which edgetpu_compiler 16.0 cannot read: it refuses the whole
    model. The Edge TPU profile keeps YOLO's size decoding (LOG, MAXIMUM) in float, so the
    network maps up to the DEQUANTIZE before it."""
    from converters import edgetpu

    result = run("tfmobile.convert", "--model", "yolo_shufflenet_v2", "--edgetpu", *SMALL,
                 "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    content = next(tmp_path.glob("*.tflite")).read_bytes()
    versions = {litert.op_name(c): c.version for c in litert.read_model(content).operatorCodes}
    assert versions["LOG"] == 1 and versions["MAXIMUM"] == 1  # float kernels
    verdict = report["edgetpu"]["analysis"]["verdict"]
    assert verdict["outcome"] == edgetpu.MAPS_UP_TO and "DEQUANTIZE" in verdict["text"]
    det = report["detection"]
    assert det["warnings"] == [] and det["quantization"]["float_tail"] == ["DEQUANTIZE", "LOG",
                                                                          "MAXIMUM"]
    assert "maps up to op" in result.stdout


@pytest.mark.slow
def test_postprocess_flags_reach_the_op(tmp_path):
    # --raw_outputs (the op left out) is checked on the converter itself in
    # test_detection_convert.py, and its record and name in the round-trip test below.
    result = run("tfmobile.convert", "--model", "ssdlite_mobilenet_v3_small", "--float16",
                 "--max_detections", "7", "--score_threshold", "0.05", "--regular_nms", *SMALL,
                 "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (made,) = tmp_path.glob("*_nms-*.tflite")
    from tfmobile.detection import commands

    postprocess = commands.postprocess_of(made.read_bytes())
    assert (postprocess.max_detections, postprocess.use_regular_nms) == (7, True)
    assert postprocess.nms_score_threshold == pytest.approx(0.05)
    boxes = litert.load(made.read_bytes()).get_output_details()[0]
    assert boxes["shape"].tolist() == [1, 7, 4]


@pytest.mark.parametrize("args,message", [
    (["--model", "ssdlite_mobilenet_v2", "--int8", "--bias_correction", "none"],
     "--bias_correction applies to classifiers"),
    (["--model", "ssdlite_mobilenet_v2", "--raw_outputs", "--max_detections", "5"],
     "--raw_outputs leaves the post-processing op out; drop --max_detections"),
    (["--model", "mobilenet_v2", "--raw_outputs"], "--raw_outputs applies to detectors"),
    (["--model", "ssdlite_mobilenet_v2", "--iou_threshold", "1.5"],
     "--iou_threshold must be in (0, 1]"),
    (["--model", "yolo_shufflenet_v2", "--alpha", "0.3"], "comes in widths"),
    (["--model", "ssdlite_mobilenet_v3_small", "--edgetpu", "--nominimalistic",
      "--noexpand_hard_swish"], "--noexpand_hard_swish keeps HARD_SWISH"),
])
def test_bad_detector_flags_are_usage_errors(tmp_path, args, message):
    result = run("tfmobile.convert", *args, "--output_dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_summary_counts_a_detector():
    result = run("tfmobile.summary", "--model", "ssdlite_mobilenet_v3_large", "--reduced_tail",
                 "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["input_size"] == 320 and summary["num_classes"] == 90
    # Table 6, V3†: 3.22 M params, 0.51 B MAdds (conv weights and biases; conv MACs).
    assert abs(summary["weights"] / 3.22e6 - 1) < 0.02 and abs(summary["macs"] / 0.51e9 - 1) < 0.02


def test_a_detectors_conversion_record_round_trips_and_a_classifiers_is_unchanged():
    made = records.Conversion(mode="int8", postprocess=(("use_regular_nms", True),
                                                        ("nms_score_threshold", 0.01)))
    data = made.to_json()
    assert data["postprocess"] == {"nms_score_threshold": 0.01, "use_regular_nms": True}
    assert records.Conversion.from_json(data) == made and made.suffix().startswith("int8_nms-")
    raw = records.Conversion(mode="float16", raw_outputs=True)
    assert records.Conversion.from_json(raw.to_json()) == raw and raw.suffix() == "float16_raw"
    # A classifier's record keeps its keys (the benchmark store's cells are keyed by them).
    assert not {"raw_outputs", "postprocess"} & set(records.Conversion(mode="int8").to_json())
    with pytest.raises(records.RecordError, match="postprocess.x must be a number"):
        records.Conversion.from_json({**data, "postprocess": {"x": "a"}})

"""Detectors on the benchmark harness: an SSDLite converted by the harness (its network int8,
ending in TFLite_Detection_PostProcess with four float outputs), timed by the device runner on
this machine (with the interpreter test's four references) and by the stand-in phone's
benchmark_model; mAP beside latency in the comparison; the @ssdlite_paper suite and its table
beside the MobileNet V3 paper's published Table 6."""

from __future__ import annotations

import json

import pytest

from android_bench import compare, models, suites
from android_bench.compare import read_accuracy
from helpers import bench, records
from tfmobile_core import cli
from tfmobile_core import records as rec

pytest_plugins = ["standins.adb_fixtures"]

QUICK = ["--num_runs", "3", "--warmup_runs", "1", "--cooldown_s", "0"]
# 96 px: the smallest size whose SSD extra layers still have a feature map to downsample
# (C5 is 3x3, the extra layers 2x2 and 1x1), and the fastest conversion.
ENTRY = "ssdlite_mobilenet_v3_small:input_size=96"
NAME = "ssdlite_mobilenet_v3_small_1_96_c90_int8"

# Its tests share an expensive module fixture: one xdist worker runs them all.
pytestmark = pytest.mark.xdist_group("bench_detection")


def main_table(directory) -> str:
    """The Markdown of the comparison's main table (not the paper's table beside it)."""
    (found,) = [p for p in directory.glob("local_*.md") if "_ssdlite_paper" not in p.name]
    return found.read_text()


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    """The harness converts the detector (int8) and times it here, checking its outputs."""
    out = tmp_path_factory.mktemp("detector")
    result = bench("run", "--models", ENTRY, "--modes", "int8", "--targets", "local", "--expect",
                   *QUICK, "--results", str(out / "results.jsonl"),
                   "--artifacts_dir", str(out / "artifacts"))
    return out, result


@pytest.mark.slow
def test_the_local_runner_times_a_detector_and_checks_its_four_outputs(detector_run):
    out, result = detector_run
    assert result.returncode == 0, result.stderr + result.stdout
    assert "1 cells on 1 target(s): 1 ok, 0 failed" in result.stdout
    (record,) = records(out / "results.jsonl")
    assert record.model.name == NAME
    assert record.model.artifact.model.input_size == 96 and record.model.macs > 0
    assert record.metrics.latency_ms.median > 0 and record.metrics.runs == 3
    # The network is XNNPACK's; the post-processing op runs on LiteRT's own kernel.
    assert record.metrics.partitions >= 1
    assert record.metrics.ops_outside_delegate["TFLite_Detection_PostProcess"] == 1
    check = record.metrics.check
    assert check["passed"]
    assert [row["name"] for row in check["outputs"]] == [
        "detection_boxes", "detection_classes", "detection_scores", "num_detections"]
    assert {row["unit"] for row in check["outputs"]} == {"absolute"}  # four float outputs
    assert check["detections"]["slots"] == 100  # only the filled ones compared
    assert NAME in main_table(out / "compare")


@pytest.mark.slow
def test_the_phones_benchmark_model_resolves_the_post_processing_op(
        detector_run, adb_device, standin_bin, tmp_path):
    out, _ = detector_run
    model = out / "artifacts" / f"{NAME}.tflite"
    result = bench("run", "--models", str(model), "--targets", "adb", *QUICK,
                   "--benchmark_binary", str(standin_bin / "benchmark_model"),
                   "--results", str(tmp_path / "results.jsonl"), env=adb_device.env)
    assert result.returncode == 0, result.stderr + result.stdout
    (record,) = records(tmp_path / "results.jsonl")
    assert record.status == "ok" and record.runner == "benchmark_model"
    assert record.model.name == NAME  # known by its embedded record, not its file name
    assert record.metrics.latency_ms.mean > 0 and record.metrics.runs == 3
    raw = (tmp_path / record.raw_output).read_text()
    assert "partially executed by the delegate" in raw  # the op stays outside XNNPACK


@pytest.mark.slow
def test_compare_puts_map_beside_latency_and_the_paper_beside_ours(detector_run, tmp_path):
    out, _ = detector_run
    evaluated = {"model": f"{NAME}.tflite", "map": 0.22, "map_50": 0.41, "map_75": None,
                 "images": 500}  # as `tfmobile.evaluate --json` prints it
    accuracy = tmp_path / "map.json"
    accuracy.write_text(json.dumps({NAME: evaluated}))
    result = bench("compare", "--results", str(out / "results.jsonl"), "--accuracy",
                   str(accuracy), "--output_dir", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr
    lines = main_table(tmp_path / "cmp").splitlines()
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    row = [c.strip() for c in next(line for line in lines if NAME in line).strip("|").split("|")]
    assert "top-1" not in header
    assert row[header.index("mAP@.5")] == "41.0%" and row[header.index("mAP")] == "22.0%"

    (paper,) = (tmp_path / "cmp").glob("*_ssdlite_paper.md")
    text = paper.read_text()
    published = [line for line in text.splitlines() if compare.PUBLISHED in line]
    assert len(published) == len(suites.SSDLITE_PAPER)
    assert any("| SSDLite MobileNet V3 Small \u2020 |" in line and "| 43 |" in line
               for line in published)
    measured = next(line for line in text.splitlines() if compare.MEASURED in line)
    assert "| SSDLite MobileNet V3 Small |" in measured and "| 96 | int8 |" in measured
    assert "| 22.0% | 41.0% |" in measured
    assert "not measured here" in text and "1905.02244v5" in text


def test_the_ssdlite_suite_is_the_papers_table():
    entries = models.expand(["@ssdlite_paper"])
    assert entries == ["ssdlite_mobilenet_v1", "ssdlite_mobilenet_v2",
                       "ssdlite_mobilenet_v3_large", "ssdlite_mobilenet_v3_large:reduced_tail",
                       "ssdlite_mobilenet_v3_small", "ssdlite_mobilenet_v3_small:reduced_tail"]
    identities = [models.zoo_identity(entry)[0] for entry in entries]
    assert {i.input_size for i in identities} == {320}  # the paper's, not the classifiers' 224
    assert [dict(i.variants).get("reduced_tail", False) for i in identities] == [
        False, False, False, True, False, True]
    assert models.expand(["@ssdlite_paper"], 160)[0] == "ssdlite_mobilenet_v1:input_size=160"
    assert [(row.latency_ms, row.map) for row in suites.SSDLITE_PAPER] == [
        (228, 22.2), (162, 22.1), (137, 22.0), (119, 22.0), (52, 16.0), (43, 16.1)]


def _record(entry: str, mode: str, latency: float) -> rec.BenchmarkRecord:
    identity, _ = models.zoo_identity(entry)
    artifact = rec.ArtifactId(identity, rec.Conversion(mode))
    model = rec.ModelFile(path=f"/elsewhere/{artifact.stem()}.tflite",
                          sha256=artifact.stem().ljust(64, "0")[:64], size_bytes=1,
                          artifact=artifact, macs=10**8)
    return rec.BenchmarkRecord(
        key=artifact.stem(), status="ok", runner="device_runner", model=model,
        target={"name": "local", "kind": "local"}, config=rec.BenchConfig(), started="",
        finished="", metrics=rec.Metrics(latency_ms=rec.Latency(median=latency)))


def test_the_paper_table_compares_speed_ups_over_mobilenet_v2():
    found = [_record("ssdlite_mobilenet_v2", "int8", 40.0),
             _record("ssdlite_mobilenet_v3_small:reduced_tail", "int8", 10.0),
             _record("ssdlite_mobilenet_v3_small:reduced_tail", "float32", 12.0)]
    rows = compare.ssdlite_paper_rows(found, {found[1].model.name: 0.3})
    by = {(row["network"], row["source"], row["mode"]): row for row in rows}
    small = "SSDLite MobileNet V3 Small \u2020"
    assert by[(small, compare.PUBLISHED, "")]["vs MobileNet V2"] == f"{162 / 43:.2f}x"
    assert by[(small, compare.PUBLISHED, "")]["MACs (M)"] == "160"  # the card's MAdds
    assert by[(small, compare.MEASURED, "int8")]["vs MobileNet V2"] == "4.00x"
    assert by[(small, compare.MEASURED, "int8")]["mAP@.5"] == "30.0%"  # a plain number: mAP@.5
    assert by[(small, compare.MEASURED, "float32")]["vs MobileNet V2"] == ""  # no float V2
    assert compare.ssdlite_paper_rows([_record("mobilenet_v2", "int8", 3.0)]) == []


def test_a_plain_number_is_top1_for_a_classifier_and_map50_for_a_detector(tmp_path):
    classifier = _record("mobilenet_v2", "int8", 3.0)
    detector = _record("ssdlite_mobilenet_v2", "int8", 30.0)
    path = tmp_path / "acc.json"
    path.write_text(json.dumps({classifier.model.name: 0.7, detector.model.name: 0.4}))
    accuracy = read_accuracy(str(path))
    assert compare.accuracy_of(classifier, accuracy) == {"top1": 0.7}
    assert compare.accuracy_of(detector, accuracy) == {"map_50": 0.4}
    rows = {r["model"]: r for r in compare.table_rows([classifier, detector], accuracy=accuracy)}
    assert rows[classifier.model.name]["top-1"] == "70.0%"
    assert rows[detector.model.name]["mAP@.5"] == "40.0%"

    path.write_text(json.dumps({detector.model.name: {"map_50": 1.5}}))
    with pytest.raises(cli.UsageError, match="the map_50 of .* must be a fraction"):
        read_accuracy(str(path))
    path.write_text(json.dumps({detector.model.name: {"AP50": 0.4}}))
    with pytest.raises(cli.UsageError, match="has none of top1, map_50, map"):
        read_accuracy(str(path))


def test_only_the_detections_the_op_filled_are_compared():
    """TFLite_Detection_PostProcess fills the first num_detections slots; the rest hold what
    the arena held (a float SSDLite's builtin kernels left up to 4.8 there), so the interpreter
    test compares the filled ones, and num_detections itself."""
    import numpy as np

    from android_bench import device_runner

    def outputs(count, junk):
        boxes = np.full((1, 5, 4), junk, np.float32)
        classes, scores = np.full((1, 5), junk, np.float32), np.full((1, 5), junk, np.float32)
        boxes[0, :count], classes[0, :count], scores[0, :count] = 0.5, 3.0, 0.9
        return [boxes, classes, scores, np.array([count], np.float32)]

    details = [{"name": n, "shape": s, "dtype": np.float32, "quantization": (0.0, 0)}
               for n, s in (("boxes", [1, 5, 4]), ("classes", [1, 5]), ("scores", [1, 5]),
                            ("count", [1]))]
    layout = (3, [0, 1, 2])
    out, ref, facts = device_runner.filled_detections(outputs(2, 4.8), outputs(2, 0.0), layout)
    assert facts["compared"] == 2 and facts["slots"] == 5
    assert device_runner.compare(out, ref, details, None)["passed"]
    # A different count fails on num_detections, whatever the slots hold.
    out, ref, _ = device_runner.filled_detections(outputs(3, 0.0), outputs(2, 0.0), layout)
    check = device_runner.compare(out, ref, details, None)
    assert not check["passed"]
    assert [row["passed"] for row in check["outputs"]] == [True, True, True, False]

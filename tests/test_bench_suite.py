"""The side-by-side benchmark: interleaved rounds, the stock keras.applications conversion next to
ours, and the FD-MobileNet paper's comparison at equal MFLOPs (android_bench/suites.py)."""

from __future__ import annotations

import json

import pytest

from android_bench import compare, models, suites
from helpers import bench, records, table
from tfmobile_core import records as rec

QUICK = ["--num_runs", "3", "--warmup_runs", "1", "--cooldown_s", "0"]

# Its tests share an expensive module fixture: one xdist worker runs them all.
pytestmark = pytest.mark.xdist_group("bench_side_by_side")


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    """Ours and the stock conversion of MobileNet V1 0.25, float32 and int8, three rounds."""
    out = tmp_path_factory.mktemp("suite")
    result = bench("run", "--models", "mobilenet_v1:alpha=0.25,stock:mobilenet_v1:alpha=0.25",
                   "--input_size", "64", "--modes", "float32,int8", "--rounds", "3", *QUICK,
                   "--results", str(out / "results.jsonl"), "--artifacts_dir", str(out / "artifacts"),
                   timeout=900)
    return out, result


@pytest.mark.slow
def test_rounds_run_every_cell_once_before_any_runs_again(side_by_side):
    out, result = side_by_side
    assert result.returncode == 0, result.stderr
    assert "12 cells (3 rounds) on 1 target(s): 12 ok, 0 failed" in result.stdout
    found = records(out / "results.jsonl")
    assert [r.run.round for r in found] == [1] * 4 + [2] * 4 + [3] * 4
    assert len({r.run.id for r in found}) == 1
    assert [r.key for r in found[:4]] == [r.key for r in found[4:8]]
    assert len({r.raw_output for r in found}) == 12  # every round's output kept

    merged = {r.model.name: r for r in compare.latest_ok(found)}
    assert len(merged) == 4
    for name, record in merged.items():
        rounds = [r.metrics.latency_ms.median for r in found if r.model.name == name]
        assert record.metrics.rounds == pytest.approx(rounds, abs=1e-4)
        assert record.metrics.latency_ms.median == pytest.approx(sorted(rounds)[1])


@pytest.mark.slow
def test_the_stock_conversion_sits_beside_ours(side_by_side):
    out, result = side_by_side
    stock_int8 = out / "artifacts" / "stock_mobilenet_v1_0.25_64_int8.tflite"
    report = json.loads(stock_int8.with_suffix(".json").read_text())
    assert report["conversion"]["converter"].startswith("keras.applications.mobilenet_0.25_64")
    assert "from_keras_model" in report["conversion"]["converter"]
    assert report["conversion"]["path"] == "stock"
    assert report["model"]["source"] == "keras.applications"
    ours = json.loads((out / "artifacts" / "mobilenet_v1_0.25_64_int8.json").read_text())
    assert report["model"]["macs"] == ours["model"]["macs"]
    assert report["model"]["params"] == ours["model"]["params"]
    # The stock path keeps Keras's dynamic batch: shape arithmetic left outside XNNPACK.
    assert "SHAPE" in report["artifact"]["execution"]["ops_outside_delegate"]
    assert ours["artifact"]["execution"]["ops_outside_delegate"] == {}

    markdown = table(out / "compare", "local").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in markdown.splitlines()[4:]}
    header = [c.strip() for c in markdown.splitlines()[2].strip("|").split("|")]
    cells = {name: [c.strip() for c in line.strip("|").split("|")] for name, line in rows.items()}
    for name in ("mobilenet_v1_0.25_64_float32", "mobilenet_v1_0.25_64_int8"):
        assert cells[name][header.index("vs stock")].endswith("x")
        assert cells[name][header.index("rounds")].startswith("3 (")
    assert cells["stock_mobilenet_v1_0.25_64_int8"][header.index("partitions")].startswith("1 (CPU: ")
    assert "0.25_64_float32.tflite" not in result.stderr  # quiet: no converter logging


def test_fd_mobilenet_paper_table_pairs_equal_cost_networks():
    """From records of the networks the suite's entries name: speed-up = peer / FD-MobileNet."""
    def record(entry: str, latency: float, macs: float) -> rec.BenchmarkRecord:
        identity, _ = models.zoo_identity(entry, 224)
        artifact = rec.ArtifactId(identity, rec.Conversion("float32"))
        model = rec.ModelFile(path=f"/elsewhere/{entry}.tflite", sha256=entry.ljust(64, "0"),
                              size_bytes=1, artifact=artifact, macs=int(macs * 1e6))
        return rec.BenchmarkRecord(
            key=entry, status="ok", runner="device_runner", model=model,
            target={"name": "local", "kind": "local"}, config=rec.BenchConfig(), started="",
            finished="", metrics=rec.Metrics(latency_ms=rec.Latency(median=latency)))

    entries = suites.fd_mobilenet_paper(224)
    assert entries[:4] == ["fd_mobilenet", "mobilenet_v1:alpha=0.5", "shufflenet_v1",
                           "shufflenet_v2"]
    assert "mobilenet_v1:alpha=0.25:input_size=128" in entries
    rows = compare.fd_mobilenet_rows([
        record("fd_mobilenet", 10.0, 144.5), record("mobilenet_v1:alpha=0.5", 12.0, 149.5),
        record("shufflenet_v1", 15.0, 137.5), record("fd_mobilenet:alpha=0.25", 2.0, 12.0),
        record("shufflenet_v1:alpha=0.25", 3.0, 17.9),
    ])
    found = {(row["MFLOPs (paper)"], row["peer"]): row for row in rows}
    assert set(found) == {(140, "MobileNet V1 0.5x"), (140, "ShuffleNet V1 1x (g=3)"),
                          (12, "ShuffleNet V1 0.25x (g=3)")}
    assert found[(140, "MobileNet V1 0.5x")]["FD speed-up"] == "1.20x"
    assert found[(140, "MobileNet V1 0.5x")]["paper (ARM, NCNN)"] == "1.10x"
    assert found[(140, "ShuffleNet V1 1x (g=3)")]["FD speed-up"] == "1.50x"
    assert found[(12, "ShuffleNet V1 0.25x (g=3)")]["paper (ARM, NCNN)"] == "1.82x"
    assert found[(12, "ShuffleNet V1 0.25x (g=3)")]["peer MACs (M)"] == "17.9"


def test_zoo_suite_names_every_network_and_its_stock_twin():
    from tfmobile import models as zoo

    entries = suites.zoo()
    assert entries[:len(zoo.available())] == zoo.available()
    assert [e for e in entries if e.startswith("stock:")] == [
        "stock:mobilenet_v1", "stock:mobilenet_v2", "stock:mobilenet_v3_large",
        "stock:mobilenet_v3_small"]


@pytest.mark.parametrize("entry,message", [
    ("@everything", "unknown suite '@everything'; choose from @zoo, @fd_mobilenet_paper"),
    ("stock:shufflenet_v2", "shufflenet_v2 has no keras.applications equivalent"),
])
def test_bad_entries_are_one_line_and_exit_2(entry, message, tmp_path):
    result = bench("run", "--models", entry, "--results", str(tmp_path / "r.jsonl"))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.jsonl").read_text()

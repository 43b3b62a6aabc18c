"""The results store and the comparison: nothing recorded is lost, nothing is read as what it
is not, and tables join models by their records, never by their file names."""

from __future__ import annotations

import dataclasses
import json

import pytest

from android_bench import compare
from android_bench.results import Store, StoreError
from helpers import bench
from tfmobile_core import records as rec

V2 = rec.ModelIdentity("mobilenet_v2", alpha=0.35, input_size=96)


def record(target="local", artifact=None, latency=2.0, config=None, key=None,
           path=None, run=None, status="ok") -> rec.BenchmarkRecord:
    config = config or rec.BenchConfig()
    name = path or (artifact.stem() + ".tflite" if artifact else "model.tflite")
    model = rec.ModelFile(path=f"/m/{name}", sha256=(key or name).ljust(64, "0")[:64],
                          size_bytes=1000, artifact=artifact, macs=10_000_000, params=1000)
    return rec.BenchmarkRecord(
        key=key or f"{target}/{name}/{config}", status=status, runner="device_runner",
        target={"name": target, "kind": target.split(":")[0]}, model=model, config=config,
        started="2026-11-29T10:00:00+00:00", finished="2026-11-29T10:00:01+00:00", run=run,
        metrics=rec.Metrics(latency_ms=rec.Latency(median=latency)) if status == "ok" else None,
        reason=None if status == "ok" else "it broke")


def write_store(path, found) -> None:
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in found))


def test_a_record_torn_by_a_kill_does_not_swallow_the_next_one(tmp_path):
    store = Store(tmp_path / "results.jsonl")
    store.append(record(key="a"))
    with open(store.path, "a") as f:  # a kill in the middle of writing the second record
        f.write(json.dumps(record(key="b").to_json())[:70])
    store.append(record(key="c"))
    assert [r.key for r in store.records()] == ["a", "c"]
    assert store.torn_lines == 1

    result = bench("compare", "--results", str(store.path), "--output_dir", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr
    assert "1 incomplete line (an interrupted write) ignored" in result.stdout


@pytest.mark.parametrize("line,message", [
    ('{"key": "a", "status": "ok"}', "line 2: record.model is missing"),
    (json.dumps({**record(key="x").to_json(), "status": "done"}),
     "line 2: record: status must be ok or failed"),
    (json.dumps({**record(key="x").to_json(), "schema_version": 7}),
     "line 2: record has schema version 7; this tfmobile reads versions up to 2: upgrade"),
    (json.dumps({**record(key="x").to_json(),
                 "metrics": {"latency_ms": {"median": -3.0}}}), "latency_ms.median must be"),
    (json.dumps({**record(key="x").to_json(),
                 "metrics": {"latency_ms": {"median": "3 ms"}}}),
     "record.metrics.latency_ms.median must be a finite number, got \"3 ms\""),
    ('[1, 2, 3]', "line 2: record must be an object"),
])
def test_a_damaged_store_is_one_line_naming_the_line_and_nothing_runs(tmp_path, line, message):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(record(key="a").to_json()) + "\n" + line + "\n")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="line 2"):
        Store(path).records()
    for args in (["compare", "--results", str(path)],
                 ["run", "--models", "nothing.tflite", "--results", str(path)]):
        result = bench(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == before  # nothing recorded is lost or changed


def test_records_written_before_the_typed_records_still_load(tmp_path):
    """A schema 1 line, as the harness wrote it before: its model is known by file only."""
    line = {"key": "4f1c", "status": "ok", "runner": "device_runner",
            "target": {"name": "local", "kind": "local", "cores": 2},
            "model": {"path": "artifacts/fd_mobilenet_1_224_int8.tflite",
                      "name": "fd_mobilenet_1_224_int8", "sha256": "ab" * 32, "size_bytes": 3,
                      "mode": "int8", "architecture": "fd_mobilenet", "macs": 144_500_000,
                      "params": 2_900_000, "compiled_for": None, "input_size": 224},
            "config": {"threads": 1, "delegate": "xnnpack", "cpus": "big", "warmup_runs": 10,
                       "num_runs": 50},
            "metrics": {"latency_ms": {"median": 4.2, "p90": 4.5, "mean": 4.3, "std": 0.1,
                                       "min": 4.0, "max": 5.0},
                        "latency_statistic": "median", "partitions": 1,
                        "ops_outside_delegate": {}},
            "host_versions": {}, "started": "x", "finished": "y", "run": None}
    (tmp_path / "old.jsonl").write_text(json.dumps(line) + "\n")
    (old,) = Store(tmp_path / "old.jsonl").records()
    assert old.model.name == "fd_mobilenet_1_224_int8" and old.model.artifact is None
    assert old.model.macs == 144_500_000 and old.metrics.latency_ms.median == 4.2


def test_every_target_and_configuration_gets_its_own_files(tmp_path):
    """Dots and colons in target names, and several configurations of one target, once wrote
    over each other's tables (a name cut at its first dot)."""
    artifact = rec.ArtifactId(V2, rec.Conversion("float32"))
    configs = [rec.BenchConfig(threads=1), rec.BenchConfig(threads=4),
               rec.BenchConfig(threads=1, cpus="all")]
    targets = ["adb:127.0.0.1:15610", "adb:127.0.0.1_15610", "ssh:root@127.0.0.1:2299", "local"]
    found = [record(target, artifact, config=config) for target in targets for config in configs]
    written = compare.write_comparison(found, tmp_path)
    files = [path for _, _, paths in written for path in paths]
    assert len(written) == len(targets) * len(configs)
    assert len(set(files)) == len(files) == 3 * len(written)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files)
    for title, text, paths in written:  # each file holds its own table
        assert paths[0].read_text() == text and text.startswith(f"### {title}")
    assert all("." not in p.stem for p in files)


def test_int8_finds_its_float_twin_by_record_not_by_name():
    """The twin of an int8 model with uint8 io is the float32 model of the same network; two
    foreign files named like twins are not paired."""
    int8_uint8 = rec.ArtifactId(V2, rec.Conversion("int8", io_type="uint8"))
    float32 = rec.ArtifactId(V2, rec.Conversion("float32"))
    other_width = rec.ArtifactId(dataclasses.replace(V2, alpha=0.5), rec.Conversion("float32"))
    rows = {row["model"]: row for row in compare.table_rows([
        record(artifact=int8_uint8, latency=1.0), record(artifact=float32, latency=3.0),
        record(artifact=other_width, latency=9.0),
        record(path="theirs_int8.tflite", latency=1.0),
        record(path="theirs_float32.tflite", latency=2.0),
    ])}
    assert int8_uint8.stem() == "mobilenet_v2_0.35_96_int8_uint8_io"
    assert rows["mobilenet_v2_0.35_96_int8_uint8_io"]["int8 speed-up"] == "3.00x"
    assert rows["theirs_int8"]["int8 speed-up"] == ""


def test_stock_twins_pair_by_record():
    ours = rec.ArtifactId(V2, rec.Conversion("int8"))
    rows = {row["model"]: row for row in compare.table_rows([
        record(artifact=ours, latency=2.0), record(artifact=ours.stock_twin(), latency=5.0)])}
    assert ours.stock_twin().stem() == "stock_mobilenet_v2_0.35_96_int8"
    assert rows["mobilenet_v2_0.35_96_int8"]["vs stock"] == "2.50x"


@pytest.mark.parametrize("content,message", [
    ('{"mobilenet_v2": "61%"}', "the top-1 of 'mobilenet_v2' must be a fraction"),
    ('{"mobilenet_v2": 61}', "must be a fraction between 0 and 1, got 61"),
    ('[0.61]', "must be a JSON object of model name -> top-1"),
    ('{"a": ', "--accuracy"),
])
def test_a_bad_accuracy_file_is_a_usage_error(tmp_path, content, message):
    path = tmp_path / "results.jsonl"
    write_store(path, [record(artifact=rec.ArtifactId(V2, rec.Conversion("float32")))])
    (tmp_path / "top1.json").write_text(content)
    result = bench("compare", "--results", str(path), "--accuracy", str(tmp_path / "top1.json"))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_rounds_of_one_run_merge_and_a_newer_run_replaces_them():
    artifact = rec.ArtifactId(V2, rec.Conversion("float32"))
    run = [record(artifact=artifact, key="k", latency=t, run=rec.RunInfo("r1", n, 3))
           for n, t in ((1, 3.0), (2, 1.0), (3, 2.0))]
    (merged,) = compare.latest_ok(run)
    assert merged.metrics.latency_ms.median == 2.0 and merged.metrics.rounds == (3.0, 1.0, 2.0)
    newer = record(artifact=artifact, key="k", latency=7.0, run=rec.RunInfo("r2", 1, 1))
    failed = record(artifact=artifact, key="k", status="failed", run=rec.RunInfo("r3", 1, 1))
    (latest,) = compare.latest_ok(run + [newer, failed])
    assert latest.metrics.latency_ms.median == 7.0 and latest.metrics.rounds is None


DATA = __import__("pathlib").Path(__file__).parent / "data" / "benchmark_model"


def test_op_profiles_from_real_logs_reach_the_records_and_the_comparison(tmp_path):
    """benchmark_model's --enable_op_profiling output (real published logs) parsed into the
    record, then each model's top ops as a table and a chart."""
    from android_bench.bench import BenchmarkModelRunner

    runner = BenchmarkModelRunner(tmp_path / "benchmark_model")
    config = rec.BenchConfig(op_profiling=True)
    found = []
    for name in ("op_profiling_tc2_xnnpack_ops", "tf_readme_op_profiling"):
        metrics = runner.parse((DATA / f"{name}.txt").read_text(), "", 0, config)
        one = record(path=f"{name}.tflite", config=config, key=name)
        found.append(dataclasses.replace(one, metrics=metrics))
    assert found[0].metrics.op_profile["by_type"][0]["type"] == "Convolution (NHWC, QU8) GEMM"
    assert found[0].metrics.peak_rss_mb == pytest.approx(10.8789)  # the footprint line
    # The record survives the store's JSON round trip.
    write_store(tmp_path / "r.jsonl", found)
    stored = Store(tmp_path / "r.jsonl").records()
    assert stored[1].metrics.op_profile == found[1].metrics.op_profile

    written = compare.write_comparison(stored, tmp_path / "compare")
    titles = [title for title, _, _ in written]
    assert any(t.startswith("Top ops: local") for t in titles), titles
    main_text = next(text for title, text, _ in written if not title.startswith("Top ops"))
    assert "| top ops |" in main_text
    assert "CONV_2D 89%, DEPTHWISE_CONV_2D 11%, SOFTMAX 0%" in main_text
    _, ops_text, files = next(w for w in written if w[0].startswith("Top ops"))
    assert "Convolution (NHWC, QU8) GEMM" in ops_text
    png = next(f for f in files if f.suffix == ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_sustained_benchmark_model_run_is_read_window_by_window():
    """The shell loop's marker lines and the tool's log of each window, as the stand-in phone
    gives them, become samples; the latency is the settled last quarter's."""
    from android_bench import benchmark_model
    from android_bench.bench import BenchmarkModelRunner

    def window(t, khz, avg_us):
        return (f"{benchmark_model.SAMPLE_MARK} t={t} khz={khz} milli_c=45000\n"
                f"INFO: count=40 first={avg_us} curr={avg_us} min={avg_us} max={avg_us} "
                f"avg={avg_us} std=0\n"
                f"INFO: Inference timings in us: Init: 900, First inference: {avg_us}, "
                f"Warmup (avg): {avg_us}, Inference (avg): {avg_us}\n")

    log = "".join(window(1000 + 5 * i, "2800000,2800000," if i < 4 else "1800000,1800000,",
                         10_000 if i < 4 else 14_000) for i in range(8))
    config = rec.BenchConfig(duration_s=40)
    metrics = BenchmarkModelRunner(None).parse(log, "", 0, config)
    samples = metrics.sustained["samples"]
    assert [s["t_s"] for s in samples] == [0, 5, 10, 15, 20, 25, 30, 35]
    assert samples[0] == {"t_s": 0, "runs": 40, "median_ms": 10.0, "max_ms": 10.0,
                          "mean_khz": 2_800_000, "hottest_c": 45.0}
    assert metrics.sustained["throttled"] and metrics.sustained["latency_rise"] == 0.4
    assert metrics.latency_ms.median == 14.0  # not its cold 10 ms
    assert metrics.runs == 320
    # A window cut short by the end of the run is left out, not an error.
    cut = log + f"{benchmark_model.SAMPLE_MARK} t=1040 khz= milli_c=46000\nINFO: STARTING!\n"
    assert len(BenchmarkModelRunner(None).parse(cut, "", 0, config).sustained["samples"]) == 8


def test_options_added_later_keep_the_cell_keys_of_older_stores():
    """A cell's key hashes its configuration's JSON: options at their defaults are left out,
    so a store written before they existed is still found by --resume."""
    older = {"threads": 1, "delegate": "xnnpack", "cpus": "big", "warmup_runs": 10,
             "num_runs": 50}
    assert rec.BenchConfig().to_json() == older
    assert rec.BenchConfig.from_json(older) == rec.BenchConfig()
    sustained = rec.BenchConfig(duration_s=30, runtime="compiled_model")
    assert sustained.to_json() == {**older, "duration_s": 30, "runtime": "compiled_model"}
    assert rec.BenchConfig.from_json(sustained.to_json()) == sustained

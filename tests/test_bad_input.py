"""Bad input, as an adversarial user gives it: every file the commands read, malformed in more
ways than the obvious ones (images, arrays, TFRecords, .tflite files, weights, class orders,
results stores, accuracy and report JSON), and flag values. Each case ends in one clear line,
a non-zero exit (2 for usage errors, 1 for failures), no partial file, nothing recorded lost,
and never a traceback or a silently wrong number."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from helpers import bench

ROOT = pathlib.Path(__file__).resolve().parents[1]
RUNNER = ROOT / "android_bench" / "device_runner.py"

pytestmark = pytest.mark.xdist_group("bad_input")  # the module's models are made once


def run(*command, cwd=None) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` (or a script) as a user runs it."""
    return subprocess.run([sys.executable, *map(str, command)], capture_output=True, text=True,
                          timeout=600, cwd=cwd, check=False)


def assert_one_line(result, code: int, message: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (its data is a few bytes)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Small .tflite models, each a way of being what evaluate and the device runner cannot
    take at face value; and a plain float32 and int8 classifier (5 classes, 32 x 32 RGB)."""
    import keras
    import tensorflow as tf
    from keras import layers

    from converters import tflite

    out = tmp_path_factory.mktemp("tiny")
    keras.utils.set_random_seed(0)

    def classifier(inputs, x=None):
        x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 1)(inputs if x is None else x))
        return layers.Dense(5)(x)

    image = keras.Input((32, 32, 3), batch_size=1)
    model = keras.Model(image, classifier(image))
    paths = {"float32": out / "float32.tflite", "int8": out / "int8.tflite"}
    paths["float32"].write_bytes(tflite.convert_float(model))

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(4):
            yield [rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        paths["int8"].write_bytes(converter.convert())

    broken = keras.models.clone_model(model)
    broken.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    paths["nan_scores"] = out / "nan_scores.tflite"
    paths["nan_scores"].write_bytes(tflite.convert_float(broken))

    def keras_converted(name, inputs, outputs):
        path = out / f"{name}.tflite"
        path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(
            keras.Model(inputs, outputs)).convert())
        paths[name] = path

    anysize = keras.Input((None, None, 3))  # LiteRT allocates it as 1 x 1 x 1 x 3
    keras_converted("any_size", anysize, classifier(anysize))
    raw = keras.Input((32, 32, 3), batch_size=1, dtype="uint8")  # no quantization parameters
    scaled = layers.Rescaling(1 / 127.5, offset=-1)(raw)
    keras_converted("raw_uint8_input", raw, classifier(raw, scaled))
    counts = layers.Lambda(lambda t: tf.cast(t * 10, tf.int32))(classifier(image))
    keras_converted("int32_scores", image, counts)
    return paths


# --- Images ------------------------------------------------------------------------------------


def test_an_image_too_large_to_decode_is_skipped_not_a_traceback(tmp_path):
    """PIL's DecompressionBombError is neither OSError nor ValueError."""
    from calibration import images, sources
    from tfmobile import data

    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "bomb.png").write_bytes(png_claiming(40_000, 40_000))
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "cls" / "fine.png")
    with pytest.raises(ValueError, match="too large"):
        images.decode(tmp_path / "cls" / "bomb.png")
    loaded = sources.load(str(tmp_path))
    assert (len(loaded.images), loaded.skipped) == (1, 1)
    assert data.load_folder(tmp_path).skipped == 1


def test_16_bit_grayscale_is_scaled_to_8_bits_not_clipped_at_255(tmp_path):
    from calibration import images

    ramp = np.linspace(0, 65535, 64 * 8).astype(np.uint16).reshape(8, 64)
    Image.fromarray(ramp).save(tmp_path / "depth.png")
    decoded = images.decode(tmp_path / "depth.png")
    assert decoded.shape == (8, 64, 3)
    np.testing.assert_allclose(decoded[..., 0], ramp / 257, atol=0.51)


def test_32_bit_pixels_of_unknown_range_are_not_read_as_white(tmp_path):
    from calibration import images

    path = tmp_path / "counts.png"  # TIFF content under an image suffix: PIL reads by content
    Image.fromarray(np.full((8, 8), 70_000, np.int32)).save(path, format="TIFF")
    with pytest.raises(ValueError, match="no known range"):
        images.decode(path)


def test_a_strip_of_an_image_is_not_resized_whole(monkeypatch, photos):
    """A 1 x 20000 image resized whole to a 32 px crop's scale is 731k x 37 pixels (and at
    224 px, 1 x 100000 asks for 20 GB); only the centre crop is resized."""
    from calibration.preprocess import Preprocessing

    photo = photos[0]
    before = Preprocessing(32)(photo)
    asked = []
    real_resize = Image.Image.resize

    def recording(self, size, *args, **kwargs):
        asked.append(size)
        return real_resize(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", recording)
    strip = np.tile(np.arange(20_000, dtype=np.uint8)[None, :, None], (1, 1, 3))
    out = Preprocessing(32)(strip)
    assert out.shape == (32, 32, 3) and max(max(size) for size in asked) <= 8 * 32
    np.testing.assert_array_equal(Preprocessing(32)(photo), before)  # photographs unchanged


# --- Calibration arrays and TFRecords ------------------------------------------------------------


def _npz_with_object_member(path):
    np.savez(path, images=np.array([1, "a"], dtype=object))


def _truncated_npz(path):
    np.savez(path, images=np.zeros((2, 8, 8, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:100])


def _npz_with_bad_crc(path):
    np.savez(path, images=np.full((2, 8, 8, 3), 7, np.uint8))
    content = bytearray(path.read_bytes())
    content[content.find(b"NUMPY") + 140] ^= 0xFF
    path.write_bytes(bytes(content))


def _npz_member_not_npy(path):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", b"hello")


PIXELS = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3))


@pytest.mark.parametrize("name,make,message", [
    ("nan.npy", lambda p: np.save(p, np.where(PIXELS > 200, np.nan, PIXELS)), "NaN or infinite"),
    ("all_nan.npy", lambda p: np.save(p, np.full((4, 8, 8), np.nan)), "NaN or infinite"),
    ("complex.npy", lambda p: np.save(p, PIXELS.astype(np.complex64)), "got complex64"),
    ("unit.npy", lambda p: np.save(p, (PIXELS / 255).astype(np.float32)), "scaled to [0, 1]"),
    ("flat.npy", lambda p: np.save(p, np.zeros((4, 0, 16, 3), np.uint8)), "hold nothing"),
    ("one_photo.npy", lambda p: np.save(p, PIXELS[0].astype(np.uint8)),
     "reads as 16 grayscale images 3 pixels wide"),
    ("objects.npz", _npz_with_object_member, "cannot read"),
    ("truncated.npz", _truncated_npz, "cannot read"),
    ("bad_crc.npz", _npz_with_bad_crc, "Bad CRC-32"),
    ("not_npy.npz", _npz_member_not_npy, "not a numpy array"),
])
def test_a_calibration_array_of_the_wrong_values_is_refused(tmp_path, name, make, message):
    from calibration import sources

    make(tmp_path / name)
    with pytest.raises(sources.SourceError, match=message.replace("[", r"\[")) as err:
        sources.load(str(tmp_path / name))
    assert "\n" not in str(err.value)


def test_a_damaged_array_is_a_usage_error_of_convert_and_nothing_is_written(tmp_path):
    _npz_with_object_member(tmp_path / "objects.npz")
    out = tmp_path / "out"
    result = run("-m", "tfmobile.convert", "--model", "fd_mobilenet", "--alpha", "0.25",
                 "--input_size", "32", "--int8", "--calibration", tmp_path / "objects.npz",
                 "--output_dir", out)
    assert_one_line(result, 2, "cannot read")
    assert not out.exists() or not any(out.iterdir())


def test_a_file_that_is_no_tfrecord_says_so_in_plain_words(tmp_path):
    from calibration import sources

    (tmp_path / "x.tfrecord").write_bytes(b"not a TFRecord at all" * 4)
    with pytest.raises(sources.SourceError, match="corrupted record at 0") as err:
        sources.load(str(tmp_path / "x.tfrecord"))
    assert "{{" not in str(err.value) and "[Op:" not in str(err.value)


# --- Weights and the class order beside them -------------------------------------------------


def test_weights_that_are_a_directory_are_not_called_missing(tmp_path):
    from tfmobile import models

    (tmp_path / "fd.weights.h5").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        models.build("fd_mobilenet", alpha=0.25, input_size=32,
                     weights=str(tmp_path / "fd.weights.h5"))


@pytest.mark.slow  # builds, saves and converts or evaluates a network
def test_weights_holding_nan_are_refused_before_any_number_is_made(tmp_path):
    """A diverged training run writes NaN weights: evaluate printed an accuracy of them and
    convert died on its report (NaN is not JSON)."""
    from tfmobile import models

    model = models.build("fd_mobilenet", alpha=0.25, input_size=32, num_classes=3)
    model.set_weights([np.full_like(w, np.nan) if i == 0 else w
                       for i, w in enumerate(model.get_weights())])
    weights = tmp_path / "diverged.weights.h5"
    model.save_weights(weights)
    with pytest.raises(ValueError, match="holds NaN or infinite values"):
        models.build("fd_mobilenet", alpha=0.25, input_size=32, num_classes=3,
                     weights=str(weights))
    for name in "abc":
        (tmp_path / "val" / name).mkdir(parents=True)
        Image.new("RGB", (40, 40), (60 * len(name), 20, 20)).save(tmp_path / "val" / name / "1.png")
    result = run("-m", "tfmobile.evaluate", "--model", "fd_mobilenet", "--alpha", "0.25",
                 "--input_size", "32", "--num_classes", "3", "--weights", weights,
                 "--data", tmp_path / "val")
    assert_one_line(result, 2, "holds NaN or infinite values")


@pytest.mark.slow  # builds, saves and converts or evaluates a network
def test_weights_whose_logits_overflow_fail_the_conversion_and_nothing_is_written(tmp_path):
    from tfmobile import artifacts, models
    from tfmobile_core import records

    model = models.build("fd_mobilenet", alpha=0.25, input_size=32, num_classes=10)
    model.set_weights([w * 1e6 if w.ndim == 4 else w for w in model.get_weights()])
    weights = tmp_path / "huge.weights.h5"
    model.save_weights(weights)
    identity = models.identity("fd_mobilenet", alpha=0.25, input_size=32, num_classes=10,
                               weights=str(weights))
    from converters import pipeline

    out = tmp_path / "out"
    out.mkdir()
    request = pipeline.Request(conversion=records.Conversion("float32"), eval_samples=2)
    with pytest.raises(artifacts.ConversionError, match="NaN or infinite logits"):
        artifacts.convert_zoo_model(identity, request, out, progress=False)
    assert not any(out.iterdir())


@pytest.mark.parametrize("names", [["a", "."], ["a", "b/c"], "[" * 5000 + "]" * 5000])
def test_a_class_order_that_names_no_folder_is_refused(tmp_path, names):
    from tfmobile import data

    weights = tmp_path / "m.weights.h5"
    text = names if isinstance(names, str) else json.dumps(names)
    (tmp_path / "m.classes.json").write_text(text)
    with pytest.raises(data.DataError, match="m.classes.json"):
        data.read_class_names(weights)


def test_weights_of_another_width_say_which_shapes_differ(tmp_path):
    """Keras's first line ends "Example error message for object <Dense ...>:" and its next
    line holds the shapes (then every weight's value)."""
    from tfmobile import models

    models.build("fd_mobilenet", alpha=0.25, input_size=32, num_classes=5).save_weights(
        tmp_path / "five.weights.h5")
    with pytest.raises(ValueError, match=r"value.shape=\(256, 5\)") as err:
        models.build("fd_mobilenet", alpha=0.25, input_size=32, num_classes=3,
                     weights=str(tmp_path / "five.weights.h5"))
    assert "\n" not in str(err.value) and "Target variable" not in str(err.value)


def test_hidden_folders_are_not_classes(tmp_path):
    """Jupyter leaves .ipynb_checkpoints in the folders it browses: training took it for a
    class, and the classifier got an output no image was ever labelled with."""
    from tfmobile import data

    for name in ("cat", "dog", ".ipynb_checkpoints"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "1.png")
    assert data.load_folder(tmp_path).class_names == ["cat", "dog"]


def test_an_alpha_too_small_for_the_network_says_so(tmp_path):
    from tfmobile import artifacts, models
    from tfmobile_core import cli

    with pytest.raises(ValueError, match="0.01 is too small for mobilenet_v1"):
        models.build("mobilenet_v1", alpha=0.01, input_size=32)
    identity = models.identity("mobilenet_v1", alpha=0.01, input_size=32)
    with pytest.raises(cli.UsageError, match="too small"):  # stock:, in the benchmark
        artifacts.convert_stock(identity, "float32", tmp_path)
    assert not any(tmp_path.iterdir())


# --- .tflite models evaluate cannot read the way it would need to ---------------------------


@pytest.mark.parametrize("name,message", [
    ("raw_uint8_input", "its input is uint8 without a quantization scale"),
    ("int32_scores", "its output is int32"),
    ("any_size", "takes images of any size"),
])
def test_evaluate_refuses_models_whose_numbers_it_would_make_up(tiny, name, message):
    from tfmobile import evaluate
    from tfmobile_core import cli

    with pytest.raises(cli.UsageError, match=message):
        evaluate.tflite_classifier(str(tiny[name]))


def test_nan_scores_are_no_accuracy(tiny):
    from tfmobile import data, evaluate
    from tfmobile_core import cli

    labelled = data.LabelledImages([np.zeros((40, 40, 3), np.uint8)] * 2, np.array([0, 1]),
                                   ["a", "b", "c", "d", "e"])
    with pytest.raises(cli.UsageError, match="NaN or infinite scores on 2 of 2 images"):
        evaluate.evaluate_tflite(tiny["nan_scores"].read_bytes(), labelled)


def test_metadata_that_points_past_the_buffers_is_a_damaged_model(tiny, tmp_path):
    from converters import litert
    from tfmobile import evaluate
    from tfmobile_core import cli
    from tfmobile_core.records import METADATA_NAME

    content = litert.with_metadata(tiny["float32"].read_bytes(), METADATA_NAME, {"x": 1})
    model = litert.read_model(content)
    for entry in model.metadata:
        entry.buffer = 10**6
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(litert.write_model(model))
    with pytest.raises(litert.NotAModel, match="damaged"):
        litert.check_model(damaged.read_bytes())
    with pytest.raises(cli.UsageError, match="damaged"):
        evaluate.tflite_classifier(str(damaged))


def test_flags_of_a_keras_model_are_refused_with_a_tflite(tiny, tmp_path):
    (tmp_path / "val" / "a").mkdir(parents=True)
    result = run("-m", "tfmobile.evaluate", "--tflite", tiny["float32"], "--data",
                 tmp_path / "val", "--weights", tmp_path / "other.weights.h5")
    assert_one_line(result, 2, "--weights applies to --model only")


# --- The converter's options ------------------------------------------------------------------


def test_a_denylist_entry_that_names_nothing_is_refused(tmp_path):
    result = run("-m", "tfmobile.convert", "--model", "fd_mobilenet", "--int8", "--denylist",
                 "HARD_SWISSH", "--output_dir", tmp_path / "out")
    assert_one_line(result, 2, "--denylist HARD_SWISSH is no LiteRT op type")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_denylisted_node_the_model_lacks_is_refused(photos):
    import keras
    from keras import layers

    from calibration import sources
    from converters import pipeline
    from tfmobile_core import records

    image = keras.Input((32, 32, 3))
    model = keras.Model(image, layers.Dense(3)(layers.GlobalAveragePooling2D()(image)))
    request = pipeline.Request(conversion=records.Conversion("int8", denylist=("no/such/node",)),
                               calibration_samples=4, eval_samples=2)
    with pytest.raises(pipeline.RequestError, match="'no/such/node' is neither an op type"):
        pipeline.convert(model, sources.ImageSet(photos[:8], "photos", "embedded"), request)


# --- The results store, the comparison and their JSON -------------------------------------------


def _record(**changes):
    from tfmobile_core import records as rec

    model = rec.ModelFile(path="/m/a.tflite", sha256="a" * 64, size_bytes=1000, macs=10**7,
                          params=1000)
    record = rec.BenchmarkRecord(
        key="k", status="ok", runner="device_runner", target={"name": "local", "kind": "local"},
        model=model, config=rec.BenchConfig(), started="s", finished="f",
        metrics=rec.Metrics(latency_ms=rec.Latency(median=2.0)))
    return dataclasses.replace(record, **changes)


def _set(data: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


@pytest.mark.parametrize("field,value,message", [
    ("metrics.latency_ms.median", 0.0, "median must be more than 0 ms"),
    ("config.threads", 0, "threads must be at least 1"),
    ("config.num_runs", 0, "num_runs must be at least 1"),
    ("model.size_bytes", -1, "size_bytes must be at least 0"),
    ("model.macs", -5, "macs must be at least 0"),
    ("metrics.partitions", -1, "partitions must be at least 0"),
])
def test_store_lines_with_impossible_values_name_their_line(tmp_path, field, value, message):
    from android_bench.results import Store, StoreError

    path = tmp_path / "results.jsonl"
    lines = [_record().to_json(), _set(_record().to_json(), field, value)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    before = path.read_bytes()
    with pytest.raises(StoreError, match=f"line 2: .*{message}"):
        Store(path).records()
    result = bench("compare", "--results", str(path), "--output_dir", str(tmp_path / "cmp"))
    assert_one_line(result, 2, message)
    assert path.read_bytes() == before and not (tmp_path / "cmp").exists()


def test_json_nested_too_deeply_is_damaged_json_not_a_traceback(tmp_path):
    from android_bench.results import Store
    from tfmobile_core.records import ConversionReport, RecordError

    deep = '{"a": ' * 10_000 + "1" + "}" * 10_000
    store = tmp_path / "results.jsonl"
    store.write_text(json.dumps(_record().to_json()) + "\n" + deep + "\n")
    reading = Store(store)
    assert len(reading.records()) == 1 and reading.torn_lines == 1
    (tmp_path / "report.json").write_text(deep)
    with pytest.raises(RecordError, match="is not JSON"):
        ConversionReport.read(tmp_path / "report.json")
    (tmp_path / "top1.json").write_text(deep)
    result = bench("compare", "--results", str(store), "--accuracy", str(tmp_path / "top1.json"))
    assert_one_line(result, 2, "nested too deeply")


def test_a_file_that_is_not_a_results_store_is_never_appended_to(tiny, tmp_path, photos):
    """Its lines were all taken for records torn by a kill, and the run appended its records
    to it: --results photo.jpg wrote JSON into the photograph."""
    photo = tmp_path / "photo.jpg"
    Image.fromarray(photos[0]).save(photo)
    before = photo.read_bytes()
    result = bench("run", "--models", str(tiny["int8"]), "--results", str(photo),
                   "--num_runs", "1", "--nocompare")
    assert_one_line(result, 2, "line 1 is not a benchmark record")
    assert photo.read_bytes() == before


def test_fd_mobilenet_table_without_the_operation_counts(tmp_path):
    """Models benchmarked by path without their reports (MACs unknown) broke the FD-MobileNet
    table with a TypeError."""
    from android_bench import compare, models, suites
    from tfmobile_core import records as rec

    level = suites.fd_mobilenet_levels(224)[0]
    found = []
    for entry in [level.fd_mobilenet, *level.peers.values()]:
        identity, _ = models.zoo_identity(entry, 224)
        artifact = rec.ArtifactId(identity, rec.Conversion("float32"))
        model = rec.ModelFile(path=f"/m/{entry}.tflite", sha256=entry.ljust(64, "0")[:64],
                              size_bytes=1000, artifact=artifact)
        found.append(_record(key=entry, model=model))
    written = compare.write_comparison(found, tmp_path)
    fd_table = [text for title, text, _ in written if title.startswith("FD-MobileNet")]
    assert fd_table and "| 140 | fd_mobilenet_1_224_float32 |  |" in fd_table[0]


def test_a_stored_network_the_zoo_cannot_build_is_left_out_of_the_paper_table(tmp_path):
    """A record of fd_mobilenet at 16 px (a store from elsewhere): the FD-MobileNet table asked
    the zoo for its peers at 16 px and died of the ModelError."""
    from android_bench import compare
    from tfmobile_core import records as rec

    identity = rec.ModelIdentity("fd_mobilenet", input_size=16)
    model = rec.ModelFile(path="/m/fd.tflite", sha256="f" * 64, size_bytes=1000, macs=10**6,
                          artifact=rec.ArtifactId(identity, rec.Conversion("float32")))
    (written,) = compare.write_comparison([_record(model=model)], tmp_path)
    assert "fd_mobilenet_1_16_float32" in written[1]


def test_a_file_where_the_tables_go_is_found_before_the_work(tiny, tmp_path):
    store = tmp_path / "results.jsonl"
    store.write_text(json.dumps(_record().to_json()) + "\n")
    (tmp_path / "tables").write_text("a file")
    result = bench("compare", "--results", str(store), "--output_dir", str(tmp_path / "tables"))
    assert_one_line(result, 2, "is a file, not a directory for the tables")
    (tmp_path / "compare").write_text("a file")  # where run writes its comparison
    result = bench("run", "--models", str(tiny["int8"]), "--results", str(store))
    assert_one_line(result, 2, "pass --nocompare")
    assert len(store.read_text().splitlines()) == 1  # nothing ran


def test_benchmark_model_without_warm_up_runs_is_not_a_failed_cell():
    """benchmark_model prints "Warmup (avg): nan" for --warmup_runs 0: every cell failed."""
    from android_bench import bench as bench_lib

    text = ("INFO: count=0 p5=0 median=0 p95=0\n"
            "INFO: count=3 first=9 curr=8 min=8 max=9 avg=8.33 std=0\n"
            "INFO: Inference timings in us: Init: 10, First inference: 9, Warmup (avg): nan, "
            "Inference (avg): 8.33\n")
    metrics = bench_lib.BenchmarkModelRunner(None).parse(
        text, "", 0, bench_lib.Config(warmup_runs=0, num_runs=3))
    assert metrics.warmup_avg_ms is None and metrics.latency_ms.mean == pytest.approx(0.00833)


def test_a_baseline_or_accuracy_that_names_no_model_is_refused(tmp_path):
    store = tmp_path / "results.jsonl"
    store.write_text(json.dumps(_record().to_json()) + "\n")
    result = bench("compare", "--results", str(store), "--baseline", "mobilenet_v9")
    assert_one_line(result, 2, "--baseline 'mobilenet_v9' names none of the successful cells")
    (tmp_path / "top1.json").write_text('{"mobilenet_v9": 0.7}')
    result = bench("compare", "--results", str(store), "--accuracy", str(tmp_path / "top1.json"))
    assert_one_line(result, 2, "names none of the models")
    assert not (tmp_path / "compare").exists()


# --- android_bench run: flags, entries, odd paths ---------------------------------------------


@pytest.mark.parametrize("flag,message", [
    ("--cpus=0", "--cpus must be big, all or a hex mask of at least one CPU"),
    ("--cpus=-f", "--cpus must be big, all or a hex mask"),
    ("--cpus=1_0", "--cpus must be big, all or a hex mask"),
    ("--targets=", "--targets is empty"),
    ("--models=", "--models is empty"),
    ("--delegates=", "--delegates is empty"),
    ("--threads=", "--threads is empty"),
    ("--cooldown_s=nan", "--cooldown_s must be a finite number"),
    ("--cooldown_max_s=inf", "--cooldown_max_s must be a finite number"),
    ("--baseline=mobilenet_v9", "--baseline 'mobilenet_v9' names none of"),
])
def test_run_flags_that_cannot_run_anything_are_usage_errors(tiny, tmp_path, flag, message):
    store = tmp_path / "results.jsonl"
    before = json.dumps(_record().to_json()) + "\n"
    store.write_text(before)
    result = bench("run", "--models", str(tiny["int8"]), "--results", str(store),
                   "--num_runs", "1", "--warmup_runs", "0", "--cooldown_s", "0", flag)
    assert_one_line(result, 2, message)
    assert store.read_text() == before  # nothing ran, nothing recorded is lost


def test_a_cell_named_twice_runs_once(tiny, tmp_path):
    store = tmp_path / "results.jsonl"
    result = bench("run", "--models", str(tiny["int8"]), "--results", str(store),
                   "--threads", "1,1", "--delegates", "xnnpack,xnnpack", "--num_runs", "1",
                   "--warmup_runs", "0", "--nocompare")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 cells") and len(store.read_text().splitlines()) == 1


def test_a_file_where_the_raw_outputs_go_is_found_before_anything_runs(tiny, tmp_path):
    (tmp_path / "results_raw").write_text("a file, not a directory")
    result = bench("run", "--models", str(tiny["int8"]), "--results",
                   str(tmp_path / "results.jsonl"), "--num_runs", "1")
    assert_one_line(result, 2, "results_raw is a file")


def test_zoo_entries_that_say_a_thing_twice_or_nothing(tmp_path):
    from android_bench import models

    with pytest.raises(models.ModelError, match="gives alpha twice"):
        models.zoo_identity("mobilenet_v1:alpha=0.5:alpha=0.75")
    with pytest.raises(models.ModelError, match="--modes is empty"):
        models.resolve(["fd_mobilenet"], [], tmp_path)


def test_a_damaged_artifact_in_the_cache_says_to_rebuild(tmp_path):
    from android_bench import models

    (tmp_path / "fd_mobilenet_0.25_32_int8.tflite").write_bytes(b"\x1c\0\0\0TFL3" + b"\xff" * 99)
    with pytest.raises(models.ModelError, match="damaged .* pass --rebuild"):
        models.resolve(["fd_mobilenet:alpha=0.25:input_size=32"], ["int8"], tmp_path)


# --- The device runner ----------------------------------------------------------------------


def device_run(model, *args, cwd):
    result = run(RUNNER, model, "--runs", "1", "--warmup", "0", *args, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result, (json.loads(result.stdout) if result.returncode != 2 else None)


@pytest.mark.parametrize("model,array,message", [
    ("int8", np.full((1, 32, 32, 3), 300), "holds 300 to 300, outside -128 to 127"),
    ("int8", np.ones((1, 32, 32, 3), bool), "is int8 and its array bool"),
    ("float32", np.full((1, 32, 32, 3), np.nan, np.float32), "NaN or infinite values"),
    ("float32", np.full((1, 32, 32, 3), 1e300), "too large for float32"),
    ("float32", np.ones((1, 32, 32, 3), np.complex64), "its array complex64"),
    ("float32", np.full((1, 32, 32, 3), "a"), "its array str"),
])
def test_device_runner_inputs_it_would_wrap_or_cast_are_refused(tiny, tmp_path, model, array,
                                                                 message):
    np.savez(tmp_path / "inputs.npz", array)
    result, found = device_run(tiny[model], "--inputs", "inputs.npz", cwd=tmp_path)
    assert result.returncode == 1 and message in found["reason"], found["reason"]
    assert "quantize it first" not in found["reason"]  # that is for float arrays


def test_device_runner_references_and_archives_that_are_not_figures(tiny, tmp_path):
    np.save(tmp_path / "inputs.npy", np.zeros((1, 32, 32, 3), np.float32))
    np.savez(tmp_path / "words.npz", np.full((1, 5), "1.5"))
    cases = [(["--inputs", "inputs.npy"], "is one .npy array; give the inputs as an .npz"),
             (["--expect", "words.npz"], "is str96, not numbers")]
    for flags, message in cases:
        result, found = device_run(tiny["float32"], *flags, cwd=tmp_path)
        assert result.returncode == 1 and message in found["reason"], found["reason"]


def test_device_runner_times_no_model_at_a_size_it_was_not_given(tiny, tmp_path):
    result, found = device_run(tiny["any_size"], cwd=tmp_path)
    assert result.returncode == 1 and "has dynamic dimensions" in found["reason"]


@pytest.mark.parametrize("flags,message", [
    (["--seed", "-1"], "--seed must be between 0 and 4294967295"),
    (["--atol", "inf"], "--atol must be a finite number"),
    (["--save_inputs", "missing/in.npz"], "its directory does not exist"),
    (["--save_outputs", "."], "is a directory"),
    (["--save_outputs", "MODEL"], "is the model itself"),
])
def test_device_runner_flags_it_would_fail_on_later_are_usage_errors(tiny, tmp_path, flags,
                                                                     message):
    model = tmp_path / "model.tflite"
    model.write_bytes(tiny["float32"].read_bytes())
    flags = [str(model) if f == "MODEL" else f for f in flags]
    result, _ = device_run(model, *flags, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr.splitlines()[-1], result.stderr
    assert model.read_bytes() == tiny["float32"].read_bytes()


# --- Odd paths, and flags every command shares ------------------------------------------------


def test_edgetpu_analysis_written_over_its_own_model_is_refused(tiny, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(tiny["int8"].read_bytes())
    result = run("-m", "converters.edgetpu", "analyze", model, "--json", model)
    assert_one_line(result, 2, "is the model itself")
    assert model.read_bytes() == tiny["int8"].read_bytes()


def test_a_learning_rate_of_nan_is_a_usage_error(tmp_path):
    """It trained, wrote NaN weights and exited 0."""
    result = run("-m", "tfmobile.train", "--model", "fd_mobilenet", "--data", tmp_path,
                 "--learning_rate", "nan", "--output", tmp_path / "w.weights.h5")
    assert_one_line(result, 2, "--learning_rate must be a finite number, got nan")
    assert not any(tmp_path.iterdir())


def test_a_file_written_over_a_directory_names_the_file_not_its_temporary(tmp_path):
    from tfmobile_core import atomic

    (tmp_path / "out.json").mkdir()
    with pytest.raises(OSError) as err:
        atomic.write_json(tmp_path / "out.json", {"a": 1})
    assert err.value.filename == str(tmp_path / "out.json")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]

"""Weights of published float .tflite classifiers ported into the zoo, and what int8 keeps of them.

The published model is Google's float MobileNet V1 0.25 (tests/data/published/README.md).
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from calibration import sources
from calibration.preprocess import Preprocessing

PUBLISHED = pathlib.Path(__file__).parent / "data" / "published" / \
    "mobilenet_v1_0.25_224_1_default_1.tflite"


@pytest.fixture(scope="module")
def photos():
    return Preprocessing(224).batch(sources.load(sources.EMBEDDED).images)


def published_scores(images):
    from converters import litert

    return litert.run(litert.load(str(PUBLISHED)), images)


def test_ported_weights_give_the_published_models_scores(photos):
    from tfmobile import imagenet, models

    model = models.build("mobilenet_v1", alpha=0.25, num_classes=1001, weights=str(PUBLISHED))
    ported, published = model.predict(photos, verbose=0), published_scores(photos)
    np.testing.assert_allclose(ported, published, atol=1e-4)
    assert (ported.argmax(1) == published.argmax(1)).all()
    # Real photographs get confident answers, not a flat distribution.
    assert np.median(published.max(1)) > 0.2
    assert imagenet.class_names(1001)[0] == "background" and len(imagenet.synsets()) == 1000


def test_background_class_dropped_leaves_the_imagenet_distribution(photos):
    from tfmobile import models

    model = models.build("mobilenet_v1", alpha=0.25, num_classes=1000, weights=str(PUBLISHED))
    published = published_scores(photos)[:, 1:]
    np.testing.assert_allclose(model.predict(photos, verbose=0),
                               published / published.sum(1, keepdims=True), atol=1e-4)


@pytest.mark.parametrize("name, build_args", [
    ("mobilenet_v2", {"alpha": 0.35}),
    ("mobilenet_v3_large", {"alpha": 0.75}),
    ("mobilenet_v3_small", {"alpha": 1.0, "minimalistic": True}),
])
def test_round_trip_through_a_float_tflite(tmp_path, name, build_args):
    """V2 and V3 (residuals, squeeze-excite with biased convs, hard-swish): a zoo model's own
    float .tflite ports back into a freshly built twin and gives its outputs."""
    import keras

    from converters import tflite
    from tfmobile import models

    keras.utils.set_random_seed(3)
    args = dict(input_size=96, num_classes=10, **build_args)
    source = models.build(name, **args)
    for layer in source.layers:  # trained-looking batch norms: folding must carry them
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = (w.numpy() for w in layer.weights)
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, var.shape)])
    path = tmp_path / "source.tflite"
    path.write_bytes(tflite.convert_float(source))
    ported = models.build(name, weights=str(path), **args)
    images = Preprocessing(96).batch(sources.load(sources.EMBEDDED).images)
    np.testing.assert_allclose(ported.predict(images, verbose=0),
                               source.predict(images, verbose=0), atol=2e-4)


def test_structure_mismatch_names_the_first_layer_that_differs():
    from tfmobile import models
    from tfmobile.models.tflite_weights import PortError

    with pytest.raises(PortError, match=r"op 0 CONV_2D .* does not match layer 'b0' \(Conv2D, "
                                        r"kernel \(3, 3, 3, 16\)\).*--alpha"):
        models.build("mobilenet_v1", alpha=0.5, num_classes=1001, weights=str(PUBLISHED))
    with pytest.raises(PortError, match="28 weighted ops and .* 53 weighted layers"):
        models.build("mobilenet_v2", alpha=0.35, num_classes=1001, weights=str(PUBLISHED))
    with pytest.raises(PortError, match="score 1001 classes .* 10 outputs"):
        models.build("mobilenet_v1", alpha=0.25, num_classes=10, weights=str(PUBLISHED))


def test_a_quantized_tflite_is_refused(tmp_path):
    from tfmobile.models.tflite_weights import PortError, read_layers

    from converters import quantize  # noqa: F401 - TensorFlow's quantizer, used below
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [tf.function(lambda x: tf.nn.relu(x) * 2.0).get_concrete_function(
            tf.TensorSpec([1, 4, 4, 3], tf.float32))])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([np.ones((1, 4, 4, 3), np.float32)] for _ in range(2))
    converter.inference_input_type = tf.int8
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with pytest.raises(PortError, match="fully quantized model.*port from the float model"):
        read_layers(converter.convert())


def run_convert(*args):
    return subprocess.run([sys.executable, "-m", "tfmobile.convert", "--model", "mobilenet_v1",
                           "--alpha", "0.25", "--weights", str(PUBLISHED), *args],
                          capture_output=True, text=True, timeout=900)


def test_drop_background_is_checked_before_anything_runs(tmp_path):
    wrong = run_convert("--drop_background", "--num_classes", "1001", "--output_dir", str(tmp_path))
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines()[-1].endswith("does not match: drop --num_classes")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_int8_of_published_weights_keeps_the_float_answers(tmp_path):
    """The default methods against min/max alone, calibrated on the embedded photographs and
    measured on their held-out crops (figures in the README's int8 section)."""
    default_run = run_convert("--int8", "--drop_background", "--output_dir", str(tmp_path / "d"))
    assert default_run.returncode == 0, default_run.stderr
    minmax_run = run_convert("--int8", "--drop_background", "--bias_correction", "none",
                             "--output_dir", str(tmp_path / "m"))
    assert minmax_run.returncode == 0, minmax_run.stderr
    default = json.loads(next((tmp_path / "d").glob("*_int8.json")).read_text())
    minmax = json.loads(next((tmp_path / "m").glob("*_int8_bc_none.json")).read_text())
    assert default["model"]["num_classes"] == 1000
    assert default["model"]["class_names"][0] == "n01440764"
    assert default["artifact"]["fully_integer"]
    assert default["artifact"]["execution"]["partitions"] == 1
    corrections = default["conversion"]["quantization"]["bias_correction"]
    assert corrections["method"] == "auto" and corrections["layers_analytic"] == 28
    checked = corrections["sqnr_db_on_check_samples"]
    assert set(checked) == {"none", "analytic", "empirical"}
    assert corrections["applied"] == max(checked, key=checked.get) != "none"
    assert default["fidelity"]["top1_agreement"] >= 0.8 and default["fidelity"]["sqnr_db"] >= 15
    assert "WARNING" not in default_run.stdout
    assert minmax["fidelity"]["top1_agreement"] <= default["fidelity"]["top1_agreement"] - 0.25
    assert "WARNING: poor fidelity" in minmax_run.stdout
    assert "--bias_correction auto" in minmax_run.stdout


@pytest.mark.slow
def test_per_tensor_int8_does_not_collapse(tmp_path):
    """Per-tensor weights: without equalization the network collapses (measured: 2% top-1
    agreement); with the default cross-layer equalization it keeps most answers."""
    result = run_convert("--int8", "--per_tensor", "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads(next(tmp_path.glob("*per_tensor.json")).read_text())
    assert report["conversion"]["equalize"] is True
    assert report["conversion"]["quantization"]["cross_layer_equalization"]["pairs"] == 26
    assert report["fidelity"]["top1_agreement"] >= 0.7
    assert report["artifact"]["execution"]["partitions"] == 1
    collapsed = run_convert("--int8", "--per_tensor", "--noequalize", "--bias_correction", "none",
                            "--output_dir", str(tmp_path))
    assert collapsed.returncode == 0, collapsed.stderr
    report = json.loads(next(tmp_path.glob("*per_tensor_nocle_bc_none.json")).read_text())
    assert report["fidelity"]["top1_agreement"] < 0.3
    assert "WARNING: poor fidelity" in collapsed.stdout


FOOLBOX = pathlib.Path(__file__).parent / "data" / "imagenet_foolbox"


def run_evaluate(*args):
    return subprocess.run([sys.executable, "-m", "tfmobile.evaluate", *args, "--json"],
                          capture_output=True, text=True, timeout=600)


def test_published_model_on_labelled_imagenet_photographs():
    """The float .tflite as published, on foolbox's 20 labelled photographs: 1001 outputs and
    no class names of its own, so ImageNet's order with the background first."""
    result = run_evaluate("--tflite", str(PUBLISHED), "--data", str(FOOLBOX))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert (found["images"], found["class_order"], found["layout"]) == \
        (20, "imagenet", "file names")
    assert (found["top1"], found["top5"]) == (pytest.approx(13 / 20), 1.0)


@pytest.mark.slow
def test_int8_against_float_on_labelled_photographs(tmp_path):
    """Ported, converted both ways, and compared pairwise on the foolbox photographs."""
    for mode in ([], ["--int8"]):
        made = run_convert(*mode, "--output_dir", str(tmp_path))
        assert made.returncode == 0, made.stderr
    float_model, int8_model = (next(tmp_path.glob(f"*_{m}.tflite")) for m in ("float32", "int8"))
    result = run_evaluate("--tflite", str(int8_model), "--reference", str(float_model),
                          "--data", str(FOOLBOX))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["reference"]["top1"] == pytest.approx(13 / 20)  # the published model's
    assert found["paired"]["top1_agreement"] >= 0.8
    assert found["class_order"] == "model"  # the ported model carries its classes


@pytest.mark.parametrize("args, message", [
    (["--weights", "{bad}"], "is not a .tflite model (no TFL3 file identifier)"),
    (["--drop_background"], "--drop_background applies to --weights of a 1001-class .tflite"),
    (["--weights", str(PUBLISHED), "--alpha", "1.0"],
     "does not match layer 'b0' (Conv2D, kernel (3, 3, 3, 32))"),
])
def test_weights_that_cannot_be_ported_are_one_line(tmp_path, args, message):
    bad = tmp_path / "damaged.tflite"
    bad.write_bytes(b"garbage")
    result = subprocess.run([sys.executable, "-m", "tfmobile.convert", "--model", "mobilenet_v1",
                             "--alpha", "0.25", *[a.format(bad=bad) for a in args],
                             "--output_dir", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1] and lines[-1].startswith("tfmobile.convert: error:")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())

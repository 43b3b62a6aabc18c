"""python -m tfmobile.train and tfmobile.evaluate as a user runs them."""

import json
import subprocess
import sys

import pytest

from calibration import regions


def run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """FD-MobileNet 0.25 trained briefly on the 14 photograph classes, and its int8 model."""
    tmp_path = tmp_path_factory.mktemp("trained")
    root = regions.build(tmp_path / "photos", train_per_class=8, val_per_class=4)
    weights = tmp_path / "fd.weights.h5"
    model_args = ["--model", "fd_mobilenet", "--alpha", "0.25", "--input_size", "48"]
    trained = run("tfmobile.train", *model_args, "--data", str(root / "train"),
                  "--val_data", str(root / "val"), "--epochs", "2", "--output", str(weights))
    assert trained.returncode == 0, trained.stderr
    assert weights.is_file() and "best validation top-1" in trained.stdout
    classes = json.loads((tmp_path / "fd.classes.json").read_text())
    assert len(classes) == 14

    # Quantization-aware fine-tuning of those weights (tfmobile/qat.py): still a float model.
    fine_tuned = tmp_path / "fd_qat.weights.h5"
    tuned = run("tfmobile.train", *model_args, "--data", str(root / "train"),
                "--val_data", str(root / "val"), "--weights", str(weights), "--epochs", "0",
                "--quantization_aware_epochs", "1", "--output", str(fine_tuned))
    assert tuned.returncode == 0, tuned.stderr
    assert "quantization-aware fine-tuning: 1 epochs" in tuned.stdout
    assert "best validation top-1 (int8 simulated)" in tuned.stdout
    assert fine_tuned.is_file() and fine_tuned.read_bytes() != weights.read_bytes()

    keras_eval = run("tfmobile.evaluate", *model_args, "--weights", str(weights),
                     "--data", str(root / "val"), "--json")
    assert keras_eval.returncode == 0, keras_eval.stderr
    keras_result = json.loads(keras_eval.stdout)
    assert keras_result["images"] == 14 * 4 and 0 <= keras_result["top1"] <= keras_result["top5"]

    out = tmp_path / "artifacts"
    converted = run("tfmobile.convert", *model_args, "--num_classes", "14", "--weights",
                    str(weights), "--int8", "--calibration", str(root / "train"),
                    "--calibration_samples", "32", "--eval_samples", "8", "--output_dir", str(out))
    assert converted.returncode == 0, converted.stderr
    return root, weights, next(out.glob("*.tflite"))


@pytest.mark.slow
def test_train_then_evaluate_keras_and_tflite(trained):
    root, weights, tflite = trained
    tflite_eval = run("tfmobile.evaluate", "--tflite", str(tflite), "--data", str(root / "val"))
    assert tflite_eval.returncode == 0, tflite_eval.stderr
    assert "top-1" in tflite_eval.stdout and "on 56 images of 14 classes" in tflite_eval.stdout
    assert "(class order: the model's)" in tflite_eval.stdout


@pytest.mark.slow
def test_evaluation_labels_by_the_models_class_order(trained, tmp_path):
    """A class folder missing (or renamed folders that sort differently) must not shift the
    labels: the class order travels inside the .tflite. Once, one missing folder reported
    4.2% where the truth was 30.0%."""
    import shutil

    from converters import litert
    from tfmobile import data

    root, weights, tflite = trained
    partial = tmp_path / "val"
    shutil.copytree(root / "val", partial)
    classes = json.loads(weights.with_name("fd.classes.json").read_text())
    shutil.rmtree(partial / classes[0])
    result = run("tfmobile.evaluate", "--tflite", str(tflite), "--data", str(partial), "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert (found["images"], found["classes"]) == (13 * 4, 13)
    assert found["classes_without_images"] == [classes[0]]
    # The truth: every image labelled by the class order the model was trained with.
    labelled = data.load_folder(partial, classes)
    logits = litert.run(litert.load(tflite.read_bytes()), labelled.batch(48))
    assert found["top1"] == pytest.approx(data.top_k_accuracy(logits, labelled.labels)["top1"])


@pytest.mark.slow
def test_evaluation_refuses_folders_the_model_cannot_label(trained, tmp_path):
    import shutil

    root, weights, tflite = trained
    extra = tmp_path / "val"
    shutil.copytree(root / "val", extra)
    for name in ("zebra", "yak"):  # classes the model was not trained on
        shutil.copytree(next((root / "val").iterdir()), extra / name)
    result = run("tfmobile.evaluate", "--tflite", str(tflite), "--data", str(extra))
    assert result.returncode == 2
    assert "classes the model was not trained on: yak, zebra" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # A model that carries no class order: the folders must at least match its outputs.
    out = tmp_path / "random"
    converted = run("tfmobile.convert", "--model", "fd_mobilenet", "--alpha", "0.25",
                    "--input_size", "48", "--num_classes", "14", "--output_dir", str(out),
                    "--eval_samples", "4")
    assert converted.returncode == 0, converted.stderr
    result = run("tfmobile.evaluate", "--tflite", str(next(out.glob("*.tflite"))),
                 "--data", str(extra))
    assert result.returncode == 2
    assert "has 16 class folders and" in result.stderr and "has 14 outputs" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("content,message", [
    (b"", "is not a .tflite model (no TFL3 file identifier)"),
    (b"\x1c\x00\x00\x00TFL3" + b"\xff" * 64, "is a damaged .tflite model"),
    ("truncated", "is a damaged .tflite model"),
])
def test_evaluating_a_damaged_tflite_is_one_line(trained, tmp_path, content, message):
    root, _, tflite = trained
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(tflite.read_bytes()[: len(tflite.read_bytes()) // 3]
                    if content == "truncated" else content)
    result = run("tfmobile.evaluate", "--tflite", str(bad), "--data", str(root / "val"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_model_that_is_not_a_classifier_is_refused(tmp_path):
    import keras

    from converters import tflite as tflite_lib

    inputs = keras.Input((32, 32, 3))
    two = keras.Model(inputs, [keras.layers.Conv2D(4, 3)(inputs), keras.layers.Flatten()(inputs)])
    model = tmp_path / "two_outputs.tflite"
    model.write_bytes(tflite_lib.convert_float(two))
    (tmp_path / "data" / "a").mkdir(parents=True)
    result = run("tfmobile.evaluate", "--tflite", str(model), "--data", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "is not a classifier with one output of class scores" in result.stderr


def test_bad_folders_are_usage_errors(tmp_path):
    result = run("tfmobile.train", "--model", "fd_mobilenet", "--data", str(tmp_path / "none"))
    assert result.returncode == 2 and "is not a directory of class folders" in result.stderr
    result = run("tfmobile.train", "--model", "fd_mobilenet", "--data", str(tmp_path),
                 "--epochs", "0")
    assert result.returncode == 2
    assert "--epochs 0 trains nothing without --quantization_aware_epochs" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run("tfmobile.evaluate", "--tflite", str(tmp_path / "x.tflite"), "--data", str(tmp_path))
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = run("tfmobile.evaluate", "--model", "fd_mobilenet", "--data", str(tmp_path / "empty"))
    assert result.returncode == 2 and "no class subfolders" in result.stderr

"""python -m tfmobile.train and tfmobile.evaluate as a user runs them."""

import json
import subprocess
import sys

from calibration import regions


def run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=600)


def test_train_then_evaluate_keras_and_tflite(tmp_path):
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
    tflite_eval = run("tfmobile.evaluate", "--tflite", str(next(out.glob("*.tflite"))),
                      "--data", str(root / "val"))
    assert tflite_eval.returncode == 0, tflite_eval.stderr
    assert "top-1" in tflite_eval.stdout and "on 56 images" in tflite_eval.stdout


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

"""Publishes and measures the fixture weights (make.sh's last step) and writes manifest.json.

  python tests/data/weights/measure.py WORK

WORK is make.sh's: data/ (python -m calibration.regions WORK/data --train_per_class 40
--val_per_class 200 --seed 0), float/ and quantization_aware/ (tfmobile.train's outputs), and
commands.tsv (per line: output stem, stage, the arguments of tfmobile.train; tab-separated).

For each configuration, the last stage's weights are loaded into a freshly built model and saved
into this folder with its .classes.json: the same weights (checked), without the optimizer state
tfmobile.train also writes. Then both stages are measured as tests/test_int8_accuracy.py does:
float top-1 of the Keras model and top-1 of its int8 conversion (calibrated on data/train, 300
samples) on the 2,800 crops of data/val, plus the converter's fidelity report (on 64 held-out
calibration images) and how often the int8 model's top-1 differs from the float model's on the
validation crops. Prints the README's tables.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import pathlib
import platform
import subprocess
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REGIONS = {"train_per_class": 40, "val_per_class": 200, "seed": 0}


def _train_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--input_size", type=int, required=True)
    parser.add_argument("--minimalistic", action="store_true")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--quantization_aware_epochs", type=int, default=0)
    parser.add_argument("--weights")
    parser.add_argument("--data", required=True)
    parser.add_argument("--output", required=True)
    return parser.parse_args(argv)


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _classes_path(weights: pathlib.Path) -> pathlib.Path:
    return weights.with_name(weights.name.replace(".weights.h5", ".classes.json"))


def main() -> None:
    work = pathlib.Path(sys.argv[1])
    from tfmobile_core import cli

    cli.quiet_tensorflow()
    import keras
    import tensorflow as tf

    from calibration import sources
    from converters import litert, pipeline
    from tfmobile import data, models
    from tfmobile.evaluate import evaluate_keras, evaluate_tflite
    from tfmobile_core.records import Conversion

    stages: dict[str, dict[str, list[str]]] = {}
    for line in (work / "commands.tsv").read_text().splitlines():
        stem, stage, *argv = line.split("\t")
        stages.setdefault(stem, {})[stage] = argv

    calibration = sources.load(str(work / "data" / "train"))
    val_sets = {}

    def measure(model, val_set) -> dict:
        float_top1 = evaluate_keras(model, val_set)["top1"]
        converted = pipeline.convert(
            model, calibration,
            pipeline.Request(conversion=Conversion(mode="int8"), calibration_samples=300,
                             eval_samples=64),
        )
        int8_top1 = evaluate_tflite(converted.content, val_set)["top1"]
        batch = val_set.batch(model.input_shape[1])
        float_pred = model.predict(batch, verbose=0, batch_size=32).argmax(axis=1)
        int8_pred = litert.run(litert.load(converted.content), batch).argmax(axis=1)
        fidelity = converted.fidelity
        return {
            "float_top1": round(float_top1, 6),
            "int8_top1": round(int8_top1, 6),
            "delta_points": round(100 * (int8_top1 - float_top1), 2),
            "sqnr_db": round(fidelity.sqnr_db, 2),  # finite: int8 is never exact
            "top1_agreement": round(fidelity.top1_agreement, 4),
            "val_top1_agreement": round(float(np.mean(float_pred == int8_pred)), 4),
            "int8_bytes": len(converted.content),
        }

    def row(label, alpha, m) -> str:
        return (f"| {label} | {alpha:g} | {m['float_top1']:.2%} | {m['int8_top1']:.2%} "
                f"| {m['delta_points']:+.2f} | {m['sqnr_db']:.1f} dB | {m['top1_agreement']:.1%} "
                f"| {m['val_top1_agreement']:.1%} | {m['int8_bytes'] / 1e6:.3f} MB |")

    configurations, final_rows, float_rows = [], [], []
    for stem, commands in stages.items():
        args = _train_args(commands["float"])
        variants = {"minimalistic": True} if args.minimalistic else {}
        last_stage = commands.get("quantization_aware", commands["float"])
        last = pathlib.Path(_train_args(last_stage).output)
        class_names = json.loads(_classes_path(last).read_text())
        assert class_names == json.loads(_classes_path(pathlib.Path(args.output)).read_text())
        build_args = dict(alpha=args.alpha, input_size=args.input_size,
                          num_classes=len(class_names), classifier_activation=None, **variants)
        key = tuple(class_names)
        if key not in val_sets:
            val_sets[key] = data.load_folder(work / "data" / "val", class_names)
        val_set = val_sets[key]

        # Publish: the last stage's weights alone.
        weights = HERE / f"{stem}.weights.h5"
        model = models.build(args.model, weights=str(last), **build_args)
        model.save_weights(weights)
        published = models.build(args.model, weights=str(weights), **build_args)
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(),
                                                        published.get_weights(), strict=True))
        _classes_path(weights).write_text(json.dumps(class_names, indent=2) + "\n")

        label = args.model + (" minimalistic" if variants else "")
        qat_epochs = 0
        entry = {
            "weights": weights.name,
            "classes": _classes_path(weights).name,
            "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "model": dict(name=args.model, alpha=args.alpha, input_size=args.input_size,
                          num_classes=len(class_names), variants=variants),
            "epochs": args.epochs,
            "quantization_aware_epochs": 0,
            "commands": [" ".join(["python", "-m", "tfmobile.train", *argv]).replace(
                str(work), "$WORK") for argv in commands.values()],
        }
        if "quantization_aware" in commands:
            qat_epochs = _train_args(commands["quantization_aware"]).quantization_aware_epochs
            entry["quantization_aware_epochs"] = qat_epochs
            before = measure(models.build(args.model, weights=args.output, **build_args), val_set)
            entry["before_quantization_aware"] = before
            float_rows.append(row(label, args.alpha, before))
        figures = measure(published, val_set)
        entry.update(figures)
        if "quantization_aware" not in commands:
            float_rows.append(row(label, args.alpha, figures))
        configurations.append(entry)
        qat = f" + QAT {qat_epochs}" if qat_epochs else ""
        final_rows.append(row(label + qat, args.alpha, figures))
        print(final_rows[-1], flush=True)

    manifest = {
        "about": "Fixture weights of tests/test_int8_accuracy.py (README.md); regenerate with "
                 "make.sh, which measures them with measure.py. Top-1 figures are on the "
                 "val/ crops of calibration.regions.build(DIR, **validation); int8 is "
                 "calibrated on its train/ crops (300 samples), the ones the weights were "
                 "trained on.",
        "validation": {**REGIONS, "images": len(val_set.images)},
        "measured": datetime.date.today().isoformat(),
        "machine": _cpu(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "configurations": configurations,
    }
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    header = ("| network | alpha | float top-1 | int8 top-1 | delta (points) | SQNR | top-1 "
              "agreement (64) | top-1 agreement (val) | int8 size |\n"
              "|---|---|---|---|---|---|---|---|---|")
    print("\nAfter float training (post-training int8):\n" + header + "\n" + "\n".join(float_rows))
    print("\nThe fixtures:\n" + header + "\n" + "\n".join(final_rows))


if __name__ == "__main__":
    main()

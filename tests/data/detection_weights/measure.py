"""Measures the detectors' fixture weights as tests/test_detection_accuracy.py does and writes
manifest.json: float and int8 COCO mAP (pycocotools) on the composed set's 400 validation
images, the int8 model's size, partitions and fidelity.

  .venv/bin/python tests/data/detection_weights/measure.py
"""

import json
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tfmobile import models  # noqa: E402
from tfmobile.detection import commands, datasets  # noqa: E402
from tfmobile_core import atomic  # noqa: E402

HERE = pathlib.Path(__file__).parent
CONFIGS = {  # stem -> build arguments (besides num_classes, from the classes file)
    "ssdlite_mobilenet_v3_small_160": {"name": "ssdlite_mobilenet_v3_small", "input_size": 160},
    "yolo_shufflenet_v2_160": {"name": "yolo_shufflenet_v2", "input_size": 160},
}
# 400 validation images: on 100 the paired float-int8 difference moved by 2 points between
# nearly identical models (README, "Detection").
VALIDATION = {"count": 400, "seed": 0, "split": "val"}


def identity(stem: str):
    args = dict(CONFIGS[stem])
    weights = HERE / f"{stem}.weights.h5"
    names = json.loads((HERE / f"{stem}.classes.json").read_text())
    return models.identity(args.pop("name"), weights=str(weights), class_names=names,
                           num_classes=len(names), **args)


def validation_set():
    return datasets.composed_set(VALIDATION["count"], seed=VALIDATION["seed"],
                                 split=VALIDATION["split"])


def main():
    manifest = {"validation": {**VALIDATION, "source": "calibration/detection_set.py"},
                "score_threshold": commands.MAP_SCORE_THRESHOLD, "models": {}}
    val_set = validation_set()
    for stem in CONFIGS:
        with tempfile.TemporaryDirectory() as out:
            found = commands.float_against_int8(identity(stem), val_set, out)
        found.pop("tflite")
        manifest["models"][stem] = found
        print(stem, json.dumps({k: found[k] for k in ("float", "int8", "change_points")}))
    atomic.write_json(HERE / "manifest.json", manifest)


if __name__ == "__main__":
    main()

"""Tables and plots from stored benchmark results.

  python -m android_bench compare --results bench_results/results.jsonl \\
      --baseline mobilenet_v1_1_224_float32 --accuracy top1.json

Per target and configuration: a Markdown and a CSV table (model, MACs, params, size, latency
median / p90 / std, speed-up against --baseline, int8 against its float model) and a PNG of
latency against MACs, and against accuracy when --accuracy gives it. Detectors of the
@ssdlite_paper suite add a table beside the MobileNet V3 paper's published Table 6.

--accuracy FILE: a JSON object keyed by model name as the tables show it, values fractions:
  {"mobilenet_v2_1_224_int8": 0.712,
   "ssdlite_mobilenet_v3_small_1_320_c90_int8": 0.41,
   "ssdlite_mobilenet_v2_1_320_c90_int8": {"map_50": 0.41, "map": 0.22}}
A number is a classifier's top-1, or a detector's mAP@.5. A detector's object takes the
output of `tfmobile.evaluate --tflite M.tflite --data ... --json` as it prints it (its keys
"map_50", COCO mAP@.5, and "map", mAP@[.5:.95]; the others are ignored); a classifier's takes
{"top1": ...} likewise. The tables print top-1, or mAP@.5 and mAP.
"""

from __future__ import annotations

import json
import pathlib

from absl import flags

from android_bench import compare
from android_bench.results import Store, StoreError
from tfmobile_core import cli
from tfmobile_core.records import parse_json

FLAGS = flags.FLAGS
flags.DEFINE_string("results", "bench_results/results.jsonl", "Results store to read.")
flags.DEFINE_string("output_dir", None, "Where tables and plots go (default: compare/ beside "
                    "the results).")
flags.DEFINE_string("baseline", None, "Model name the speed-ups are against.")
flags.DEFINE_string("accuracy", None, "JSON file of accuracy by model name (as the tables "
                    "name models), as fractions: a number is a classifier's top-1 or a "
                    "detector's mAP@.5; an object gives {\"top1\": ..} or {\"map_50\": .., "
                    "\"map\": ..} (COCO mAP@.5 and mAP@[.5:.95], as `tfmobile.evaluate --json` "
                    "prints them: paste its output as the value). Adds top-1, or mAP@.5 and "
                    "mAP, columns and the latency-accuracy plot.")


def main(argv):
    del argv
    store = Store(FLAGS.results)
    if not store.path.exists():
        raise cli.UsageError(f"no results at {store.path}; run `python -m android_bench run` first")
    accuracy = read_accuracy(FLAGS.accuracy) if FLAGS.accuracy else None
    try:
        records = store.records()
    except StoreError as err:
        raise cli.UsageError(str(err)) from None
    names = {r.model.name for r in records if r.status == "ok"}
    if FLAGS.baseline and names:  # else: nothing to compare, said below
        compare.check_baseline(FLAGS.baseline, names, f"the successful cells of {store.path}")
    if accuracy and names and not names & set(accuracy):
        raise cli.UsageError(f"--accuracy {FLAGS.accuracy} names none of the models of "
                             f"{store.path} (model names as the tables show them, e.g. "
                             f"{sorted(names)[0]})")
    out_dir = pathlib.Path(FLAGS.output_dir) if FLAGS.output_dir else store.path.parent / "compare"
    compare.check_output_dir(out_dir, "--output_dir")
    written = compare.write_comparison(records, out_dir, baseline=FLAGS.baseline, accuracy=accuracy)
    if not written:
        raise cli.Failure(f"{store.path} has no successful cells to compare{store.torn_note()}")
    for _, text, files in written:
        print(f"{text}(files: {', '.join(map(str, files))})\n")
    if store.torn_lines:
        print(store.torn_note().lstrip("; ").capitalize())
    return 0


ACCURACY_KEYS = ("top1", "map_50", "map")


def read_accuracy(path: str) -> dict[str, float | dict[str, float]]:
    """{"model name": a fraction (top-1, or a detector's mAP@.5), or {metric: fraction} of
    ACCURACY_KEYS (other keys, and nulls, ignored: an evaluate --json object as printed)};
    UsageError (one line) for anything else."""
    try:
        accuracy = parse_json(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise cli.UsageError(f"--accuracy {path}: {getattr(err, 'strerror', None) or err}") \
            from None
    if not isinstance(accuracy, dict):
        raise cli.UsageError(f"--accuracy {path} must be a JSON object of model name -> top-1 "
                             "(or a detector's mAP@.5, or an object of top1, map_50, map)")
    read: dict[str, float | dict[str, float]] = {}
    for name, value in accuracy.items():
        if isinstance(value, dict):
            figures = {key: value[key] for key in ACCURACY_KEYS if value.get(key) is not None}
            if not figures:
                raise cli.UsageError(f"--accuracy {path}: the object of {name!r} has none of "
                                     f"{', '.join(ACCURACY_KEYS)} (fractions)")
            read[name] = {key: _fraction(path, name, key, got) for key, got in figures.items()}
        else:
            read[name] = _fraction(path, name, "top-1", value)
    return read


def _fraction(path: str, name: str, metric: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise cli.UsageError(f"--accuracy {path}: the {metric} of {name!r} must be a fraction "
                             f"between 0 and 1, got {json.dumps(value)}")
    return float(value)

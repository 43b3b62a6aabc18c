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

import pathlib

from absl import flags

from android_bench import compare
from android_bench.results import Store, StoreError
from tfmobile_core import cli

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


read_accuracy = compare.read_accuracy  # where it lives: no flags there, so tests can import it

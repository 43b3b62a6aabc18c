"""Tables and plots from stored benchmark results.

  python -m android_bench compare --results bench_results/results.jsonl \\
      --baseline mobilenet_v1_1_224_float32 --accuracy top1.json

Per target and configuration: a Markdown and a CSV table (model, MACs, params, size, latency
median / p90 / std, speed-up against --baseline, int8 against its float model) and a PNG of
latency against MACs, and against top-1 when --accuracy gives it ({"model name": 0.712, ...}).
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
flags.DEFINE_string("accuracy", None, "JSON file of top-1 accuracy by model name, for the "
                    "latency-accuracy plot.")


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


def read_accuracy(path: str) -> dict[str, float]:
    """{"model name": top-1 as a fraction}; UsageError (one line) for anything else."""
    try:
        accuracy = parse_json(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise cli.UsageError(f"--accuracy {path}: {getattr(err, 'strerror', None) or err}") \
            from None
    if not isinstance(accuracy, dict):
        raise cli.UsageError(f"--accuracy {path} must be a JSON object of model name -> top-1")
    for name, value in accuracy.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise cli.UsageError(f"--accuracy {path}: the top-1 of {name!r} must be a fraction "
                                 f"between 0 and 1, got {json.dumps(value)}")
    return {name: float(value) for name, value in accuracy.items()}

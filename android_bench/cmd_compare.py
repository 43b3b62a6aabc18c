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
from android_bench.results import Store
from tfmobile import cli

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
    accuracy = None
    if FLAGS.accuracy:
        try:
            accuracy = json.loads(pathlib.Path(FLAGS.accuracy).read_text())
        except (OSError, ValueError) as err:
            raise cli.UsageError(f"--accuracy {FLAGS.accuracy}: {err}") from None
    records = store.records()
    out_dir = pathlib.Path(FLAGS.output_dir) if FLAGS.output_dir else store.path.parent / "compare"
    written = compare.write_comparison(records, out_dir, baseline=FLAGS.baseline, accuracy=accuracy)
    if not written:
        raise cli.Failure(f"{store.path} has no successful cells to compare")
    for title, stem, text in written:
        print(f"{text}(also {compare.also_written(stem)})\n")
    return 0

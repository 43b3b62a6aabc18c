"""Prints a zoo network's layers with their parameters and multiply-accumulates.

  python -m tfmobile.summary --model mobilenet_v2 --alpha 1.4
  python -m tfmobile.summary --model shufflenet_v1 --groups 8 --json
  python -m tfmobile.summary --model ssdlite_mobilenet_v3_small --reduced_tail   # 320 px, 90 classes
  python -m tfmobile.summary --published      # every published figure against the zoo

MACs count conv, depthwise and dense layers (H_out * W_out * k * k * C_in / groups * C_out), as
the papers do; "weights" are those layers' kernels and biases, "params" add batch norm.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from tfmobile import model_flags
from tfmobile_core import cli

model_flags.define_model_flags(required=False)
flags.DEFINE_boolean("json", False, "Print one JSON object instead of the table.")
flags.DEFINE_boolean("published", False, "Compare every published figure (MACs, weights, "
                     "parameters; tfmobile/models/cards.py) with the zoo and print the table.")
flags.DEFINE_boolean("verbose", False, "Show TensorFlow's own logging.")
FLAGS = flags.FLAGS


def format_table(summary: dict) -> str:
    lines = [f"{'layer':<24} {'type':<22} {'output':<16} {'params':>11} {'MACs':>13}"]
    for layer in summary["layers"]:
        shape = "x".join(map(str, layer["output_shape"]))
        lines.append(
            f"{layer['name']:<24} {layer['type']:<22} {shape:<16} "
            f"{layer['params']:>11,} {layer['macs']:>13,}"
        )
    variant = "".join(
        f", {k} {summary[k]}" for k in ("groups", "minimalistic") if summary.get(k)
    ) + (", reduced tail (†)" if summary.get("reduced_tail") else "")
    if summary["model"].startswith(("ssdlite_", "yolo_")):
        variant += f", {summary['num_classes']} classes + background"
    lines.append(
        f"{summary['model']} (alpha {summary['alpha']:g}, {summary['input_size']}x"
        f"{summary['input_size']}{variant}): {summary['params']:,} params "
        f"({summary['weights']:,} conv+dense weights), {summary['macs'] / 1e6:.2f} M MACs"
    )
    return "\n".join(lines)


def format_published(rows: list[dict]) -> str:
    lines = ["| model | figure | published | tfmobile | deviation | reproduced |",
             "|---|---|---:|---:|---:|:---:|"]
    for r in rows:
        exact = isinstance(r["published"], int)
        published = f"{r['published']:,}" if exact else r["published"]
        ours = f"{r['ours']:,}" if exact else f"{r['ours']:.2f}"
        lines.append(f"| {r['model']} | {r['figure']} | {published} | {ours} "
                     f"| {r['deviation']:+.2%} | {r['verdict']} |")
    judged = [r for r in rows if r["verdict"] != "info"]
    ok = sum(r["verdict"] == "yes" for r in judged)
    lines.append(f"\n{ok} of {len(judged)} figures reproduced ({len(rows) - len(judged)} "
                 "paper figures shown for information beside the reference's computed count).")
    return "\n".join(lines)


def main(argv):
    del argv
    if not FLAGS.published:
        if FLAGS.model is None:
            raise cli.UsageError("--model is required (or --published); see --help")
        # The arguments checked, and their defaults resolved, before TensorFlow loads.
        args = model_flags.identity(FLAGS.model, model_flags.model_args(FLAGS)).build_args()
    cli.quiet_tensorflow(FLAGS.verbose)
    if FLAGS.published:
        from tfmobile.models.cards import CARDS, check_card

        rows = [row for card in CARDS for row in check_card(card)]
        print(json.dumps(rows) if FLAGS.json else format_published(rows))
        return 0 if all(r["verdict"] != "NO" for r in rows) else 1
    from tfmobile.profile import summarize

    try:
        summary = summarize(FLAGS.model, **args)
    except ValueError as err:
        raise cli.UsageError(str(err)) from None
    if FLAGS.json:
        json.dump(summary, sys.stdout)
        print()
    else:
        print(format_table(summary))


if __name__ == "__main__":
    cli.run(main)

"""Converts a zoo network to TFLite and reports how close it stays to the float model.

  python -m tfmobile.convert --model fd_mobilenet --int8
  python -m tfmobile.convert --model mobilenet_v3_small --int8 --calibration photos/ --io_type uint8
  python -m tfmobile.convert --model mobilenet_v2 --float16 --weights trained.weights.h5
  python -m tfmobile.convert --model shufflenet_v1 --edgetpu
  python -m tfmobile.convert --model ssdlite_mobilenet_v3_small --int8 --weights det.weights.h5

Writes <output_dir>/<name>.tflite and <name>.json (the report: architecture, ops, tensor types,
io quantization, preprocessing, calibration, fidelity on held-out images, versions). Without
--calibration, the embedded photographs (calibration/images) calibrate and measure fidelity.
"""

from __future__ import annotations

import os
import pathlib
import sys

from absl import flags

from tfmobile import model_flags
from tfmobile.artifacts import (ConversionError, WriteError, convert_detector_model,
                                convert_zoo_model)
from tfmobile_core import cli
from tfmobile_core.records import RANDOM_INIT, Conversion, ConversionReport

model_flags.define_model_flags()
model_flags.define_weights_flags("Weights to load: a .weights.h5 file, or 'imagenet' (the "
                                  "published Keras weights; MobileNet V1/V2/V3 only). Default: "
                                  "random init.")
flags.DEFINE_boolean("int8", False, "Full-integer int8 post-training quantization from a "
                     "calibration set (TFLITE_BUILTINS_INT8 only).")
flags.DEFINE_boolean("float16", False, "Float16 weights, float32 compute.")
flags.DEFINE_boolean("dynamic", False, "Dynamic-range quantization: int8 weights, float "
                     "activations. (No mode flag: float32.)")
flags.DEFINE_boolean("edgetpu", False, "Edge TPU profile: full-integer int8 with uint8 input "
                     "and output, batch 1, static shapes, and the network's variant whose every "
                     "op maps (MobileNet V3 minimalistic, ShuffleNet V1 split_groups). Adds the "
                     "offline Edge TPU analysis to the report and, where edgetpu_compiler is on "
                     "PATH, compiles <stem>_edgetpu.tflite; refuses options that cannot map.")
flags.DEFINE_string("edgetpu_compiler_flags", "", "--edgetpu: options for edgetpu_compiler, "
                    "passed to it as written (e.g. \"-d -k 10\", \"-a\", \"-m 13\", \"-n 2\", "
                    "\"-i TENSOR,...\"); the offline analysis follows those that change where ops "
                    "run. Outputs go to --output_dir.")
flags.DEFINE_enum("io_type", None, ["int8", "uint8", "float32"], "Input/output type of an "
                  "--int8 model (default int8; uint8 suits the Edge TPU and camera frames).")
flags.DEFINE_boolean("per_tensor", False, "--int8: one scale per tensor instead of per output "
                     "channel (older NNAPI drivers and DSPs need it; costs accuracy).")
flags.DEFINE_string("calibration", None, "Images to calibrate and to measure fidelity on: a "
                    "directory (searched recursively; JPEG, PNG, BMP, GIF), a .npy/.npz array "
                    "(N x H x W [x C], uint8) or a .tfrecord of encoded images. Every 4th image "
                    "is held out for fidelity. Default: the embedded photographs.")
flags.DEFINE_integer("calibration_samples", 300, "--int8: how many calibration samples (the "
                     "source's images, expanded with crops and flips when it has fewer).",
                     lower_bound=1)
flags.DEFINE_integer("eval_samples", 64, "Held-out samples fidelity is measured on.",
                     lower_bound=1)
flags.DEFINE_string("output_dir", "artifacts", "Where the .tflite and its report go.")
flags.DEFINE_boolean("expand_hard_swish", True, "--int8: write each HARD_SWISH as ADD/MUL ops "
                     "XNNPACK runs (int8 HARD_SWISH splits the graph and runs 3x slower); "
                     "--noexpand_hard_swish keeps the op, e.g. for an NPU that has it.")
flags.DEFINE_boolean("float_depthwise", True, "--dynamic: store depthwise filters as float32 "
                     "(their int8 values dequantized): XNNPACK has no int8-weight depthwise "
                     "kernel, and each one split the graph; costs a few percent of file size.")
flags.DEFINE_boolean("equalize", None, "--int8: cross-layer equalization (Nagel et al. 2019) "
                     "before calibration: rescales each conv/depthwise pair so their channels' "
                     "weight ranges match, keeping the function (RELU6's clip respected). "
                     "Default: on with --per_tensor, where it prevents the collapse of "
                     "MobileNets; off per channel, where it measured no gain.")
flags.DEFINE_enum("ranges", "minmax", ["minmax", "mse"], "--int8: activation ranges: min/max "
                  "over the calibration samples, or the range of least quantization error "
                  "(MSE over each tensor's histogram, AIMET's tf_enhanced).")
flags.DEFINE_enum("bias_correction", "auto", ["none", "analytic", "empirical", "auto"],
                  "--int8: take back the mean shift quantization causes in each layer's output: "
                  "'analytic' from the weights' rounding error and each input's mean; "
                  "'empirical' then measures each layer's int8 output mean against float on 32 "
                  "calibration samples and corrects what remains; 'auto' (default) keeps "
                  "whichever of none, analytic and empirical comes closest to float on 32 other "
                  "calibration samples. Uses no labels. Weights fine-tuned quantization-aware "
                  "were trained through int8's rounding: use 'none'.")
flags.DEFINE_boolean("adaround", False, "--int8: learn each weight's rounding, up or down, so "
                     "that each layer's output stays closest to float on 32 calibration samples "
                     "(AdaRound, Nagel et al. 2020). Minutes, not seconds; off by default: on "
                     "MobileNet V1 0.25 it added 2 points of agreement with float to the default.")
flags.DEFINE_boolean("debug_quantization", False, "--int8: add the QuantizationDebugger's "
                     "per-layer error table to the report and print its worst layers.")
flags.DEFINE_list("denylist", [], "--int8: what to keep in float, comma-separated: op types "
                  "in upper case (HARD_SWISH, MUL) or node names as --debug_quantization lists "
                  "them; the report lists what stayed float.")
flags.DEFINE_boolean("raw_outputs", False, "Detectors: leave TFLite_Detection_PostProcess out; "
                     "the model outputs its box encodings and class scores (decode them with the "
                     "anchors in the report's detection section).")
flags.DEFINE_integer("max_detections", None, "Detectors: detections the post-processing op "
                     "returns (default 100).", lower_bound=1)
flags.DEFINE_float("score_threshold", None, "Detectors: the op drops detections scoring below "
                   "this (default 0.3; 1e-8 as the Object Detection API's configs, for COCO mAP).")
flags.DEFINE_float("iou_threshold", None, "Detectors: NMS suppresses boxes overlapping a better "
                   "one by more than this IoU (default 0.6).")
flags.DEFINE_boolean("regular_nms", None, "Detectors: NMS per class (slower), instead of the "
                     "default fast NMS over each anchor's best class.")
flags.DEFINE_boolean("verbose", False, "Show TensorFlow's and the converter's own logging.")
FLAGS = flags.FLAGS

# Detectors' post-processing flags -> converters.detection.PostProcess fields.
POSTPROCESS_FLAGS = {"max_detections": "max_detections", "score_threshold": "nms_score_threshold",
                     "iou_threshold": "nms_iou_threshold", "regular_nms": "use_regular_nms"}
# The classifier converter's int8 methods; the detector converter calibrates min/max only.
CLASSIFIER_ONLY = ("debug_quantization", "denylist", "equalize", "ranges", "bias_correction",
                   "adaround", "per_tensor")


def detector_conversion(mode: str) -> Conversion:
    """The Conversion of a detector from the flags; options it does not take are usage errors."""
    for name in CLASSIFIER_ONLY:
        if FLAGS[name].present:
            raise cli.UsageError(f"--{name} applies to classifiers; detectors are calibrated "
                                 "with min/max ranges only")
    postprocess = {field: FLAGS[flag].value for flag, field in POSTPROCESS_FLAGS.items()
                   if FLAGS[flag].value is not None}
    if FLAGS.raw_outputs and postprocess:
        raise cli.UsageError(f"--raw_outputs leaves the post-processing op out; drop "
                             f"--{next(f for f in POSTPROCESS_FLAGS if FLAGS[f].value is not None)}")
    if "nms_iou_threshold" in postprocess and not 0 < postprocess["nms_iou_threshold"] <= 1:
        raise cli.UsageError("--iou_threshold must be in (0, 1]")
    return Conversion(mode=mode, io_type="uint8" if FLAGS.edgetpu else FLAGS.io_type or "",
                      edgetpu=FLAGS.edgetpu, expand_hard_swish=FLAGS.expand_hard_swish,
                      float_depthwise=FLAGS.float_depthwise,
                      raw_outputs=FLAGS.raw_outputs, postprocess=tuple(postprocess.items()))


def print_detector_summary(report: ConversionReport, tflite_path, report_path) -> None:
    art, det = report.artifact, report.detection
    print(f"{tflite_path.stem}: {tflite_path} ({art.file_bytes / 1e6:.2f} MB, "
          f"{report.seconds:.1f} s)")
    graph = det["graph"]
    names = ", ".join(o["key"] for o in graph["outputs"])
    print(f"  network fully integer: {'yes' if graph['fully_integer'] else 'no'}; input "
          f"{graph['input']['dtype']}; outputs: {names}")
    run = det["execution"]
    outside = ", ".join(f"{n} {op}" for op, n in run["ops_outside_delegate"].items())
    print(f"  LiteRT CPU: {run['partitions']} XNNPACK partition"
          f"{'s' if run['partitions'] != 1 else ''}" + (f"; outside it: {outside}" if outside
                                                        else ", nothing outside"))
    for note in det.get("notes", []):
        print(f"  note: {note}")
    fid = det["fidelity"]
    parts = []
    if fid.get("score_sqnr_db") is not None:
        parts.append(f"score SQNR {fid['score_sqnr_db']:.1f} dB")
    if fid.get("box_iou_mean") is not None:
        parts.append(f"box IoU {fid['box_iou_mean']:.3f}")
    if fid.get("detection_agreement") is not None:
        parts.append(f"float detections found {fid['detection_agreement']:.0%}")
    print(f"  vs float on {fid['samples']} held-out images: " + ", ".join(parts))
    for line in det.get("warnings", []):
        print(f"  WARNING: {line}")
    if report.edgetpu:
        print_edgetpu_summary(report.edgetpu)
    print(f"  report: {report_path}")


def mode_from_flags() -> str:
    chosen = [m for m in ("int8", "float16", "dynamic") if getattr(FLAGS, m)]
    if len(chosen) > 1:
        raise cli.UsageError(f"choose one mode, not {' and '.join('--' + m for m in chosen)}")
    if FLAGS.edgetpu and chosen and chosen != ["int8"]:
        raise cli.UsageError(f"--edgetpu makes a full-integer int8 model; the Edge TPU runs no "
                             f"--{chosen[0]} model: drop --{chosen[0]}")
    mode = "int8" if FLAGS.edgetpu else chosen[0] if chosen else "float32"
    if mode != "int8":
        for name in ("io_type", "per_tensor", "debug_quantization", "denylist", "expand_hard_swish",
                     "equalize", "ranges", "bias_correction", "adaround"):
            if FLAGS[name].present:
                raise cli.UsageError(f"--{name} applies to --int8 models only")
    if mode != "dynamic" and FLAGS["float_depthwise"].present:
        raise cli.UsageError("--float_depthwise applies to --dynamic models only")
    if FLAGS.denylist:
        from converters import litert

        known = litert.builtin_op_names()
        unknown = [op for op in FLAGS.denylist if op.isupper() and op not in known]
        if unknown:  # the converter would keep nothing in float, without a word
            raise cli.UsageError(f"--denylist {unknown[0]} is no LiteRT op type (e.g. HARD_SWISH, "
                                 "MUL, AVERAGE_POOL_2D); node names are as --debug_quantization "
                                 "lists them")
    return mode


def edgetpu_profile(name: str, model_args: dict) -> dict:
    """The Edge TPU profile: the network's mapping variant unless a variant flag says otherwise,
    and one usage error for each option with which the model could not run on the Edge TPU."""
    from tfmobile import models

    if FLAGS.io_type not in (None, "uint8"):
        raise cli.UsageError(f"--edgetpu uses uint8 input and output (the Edge TPU's own "
                             f"interface); drop --io_type {FLAGS.io_type}")
    if FLAGS.denylist:
        raise cli.UsageError("--edgetpu cannot keep ops in float: the Edge TPU runs 8-bit ops "
                             "only, and the first float op sends the rest to the CPU; drop --denylist")
    try:
        entry = models.entry(name)
    except ValueError as err:
        raise cli.UsageError(str(err)) from None
    args = dict(model_args)
    for key, value in entry.edgetpu_variant.items():
        if FLAGS[key].value is None:  # the user's own choice stands
            args[key] = value
    hard_swish = (entry.backbone or name).startswith("mobilenet_v3") and not args.get("minimalistic")
    if hard_swish and not FLAGS.expand_hard_swish:
        raise cli.UsageError("--noexpand_hard_swish keeps HARD_SWISH, which the Edge TPU does not "
                             "run; drop it (or build --minimalistic)")
    return args


def edgetpu_compiler_flags():
    """--edgetpu_compiler_flags, read (converters.edgetpu_flags); None without --edgetpu."""
    from converters.edgetpu_flags import CompilerFlags

    if not FLAGS.edgetpu:
        if FLAGS.edgetpu_compiler_flags:
            raise cli.UsageError("--edgetpu_compiler_flags applies to --edgetpu conversions")
        return None
    try:
        return CompilerFlags.passed_through(FLAGS.edgetpu_compiler_flags)
    except ValueError as err:
        raise cli.UsageError(f"--edgetpu_compiler_flags: {err}") from None


def check_output_dir(path: str) -> pathlib.Path:
    out = pathlib.Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cli.UsageError(f"cannot create --output_dir {path!r}: {err.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise cli.UsageError(f"--output_dir {path!r} is not writable; choose another directory")
    return out


def print_summary(report: ConversionReport, tflite_path, report_path) -> None:
    art, fid = report.artifact, report.fidelity
    io = art.input
    io_text = io.dtype + (f" (scale {io.scale:.4g}, zero point {io.zero_point})" if io.scale else "")
    print(f"{tflite_path.stem}: {tflite_path} ({art.file_bytes / 1e6:.2f} MB, "
          f"{report.seconds:.1f} s)")
    print(f"  fully integer: {'yes' if art.fully_integer else 'no'}; input {io_text}")
    run = art.execution
    outside = ", ".join(f"{n} {op}" for op, n in run.ops_outside_delegate.items())
    print(f"  LiteRT CPU: {run.partitions} XNNPACK partition{'s' if run.partitions != 1 else ''}"
          + (f"; outside it: {outside}" if outside else ", nothing outside"))
    quantization = report.quantization or {}
    if report.conversion.mode == "int8" and "bias_correction" in quantization:
        conversion = report.conversion
        applied = quantization["bias_correction"].get("applied", conversion.bias_correction)
        chosen = (f"{applied} (auto)" if conversion.bias_correction == "auto"
                  else conversion.bias_correction)
        print(f"  int8 methods: bias correction {chosen}, ranges "
              f"{'MSE' if conversion.ranges == 'mse' else 'min/max'}, cross-layer equalization "
              f"{'on' if conversion.equalize else 'off'}, AdaRound "
              f"{'on' if conversion.adaround else 'off'}")
    sqnr = "identical" if fid.sqnr_db is None else f"{fid.sqnr_db:.1f} dB"
    print(f"  vs float on {fid.samples} held-out samples: top-1 agreement "
          f"{fid.top1_agreement:.1%}, top-{fid.k} overlap {fid.topk_overlap:.1%}, SQNR {sqnr}, "
          f"cosine {fid.cosine:.4f}")
    for line in fidelity_warnings(report):
        print(f"  WARNING: {line}")
    if report.layer_errors:
        worst = ", ".join(f"{r['tensor'].split(';')[0].rsplit('/', 2)[-2]} ({r['op']}) "
                          + (f"{r['sqnr_db']:.1f} dB" if r["sqnr_db"] is not None else "exact")
                          for r in report.layer_errors[:3])
        print(f"  worst layers by SQNR: {worst}")
    if report.edgetpu:
        print_edgetpu_summary(report.edgetpu)
    print(f"  report: {report_path}")


# Below these a converted model no longer gives the float model's answers often enough to be
# shipped without looking (MobileNet V1 0.25 int8 with the default methods: 89%, 18 dB).
POOR_AGREEMENT = 0.80
POOR_SQNR_DB = 15.0
# Where the held-out logits sit in their calibrated int8 range (converters/fidelity.range_use).
# Random-weight MobileNet V3 Large and Small, 13 seeds, default conversion: the 6 runs under 4
# steps (RMS) or over 1.2x the range (clipped) measured -13.6 to 14.8 dB (median 7.7), the
# other 7 14.3 to 26.9 dB (median 18.9).
FEW_INT8_STEPS = 4.0
CLIPPED = 1.2


def fidelity_warnings(report: ConversionReport) -> list[str]:
    """What the summary says when the converted model strays from float, and what to try."""
    fid, conversion = report.fidelity, report.conversion
    sqnr = fid.sqnr_db
    # An untrained network's top two scores are nearly equal, so its top-1 flips on noise that
    # costs no fidelity (fd_mobilenet, random: 78% agreement at 31 dB): there SQNR alone judges.
    trained = report.model.weights != RANDOM_INIT
    poor_agreement = trained and fid.top1_agreement < POOR_AGREEMENT
    if not poor_agreement and (sqnr is None or sqnr >= POOR_SQNR_DB):
        return []
    lines = [f"poor fidelity: the converted model gives the float model's top-1 class on "
             f"{fid.top1_agreement:.0%} of held-out samples"
             + (f", and its error outweighs its signal (SQNR {sqnr:.1f} dB)" if sqnr is not None
                and sqnr < 0 else f" (SQNR {sqnr:.1f} dB)" if sqnr is not None else "")]
    held_out = fid.held_out or {}
    steps = held_out.get("logits_rms_in_int8_steps")
    peak = held_out.get("logits_peak_over_calibrated_range")
    if steps is not None and steps < FEW_INT8_STEPS:
        lines.append(f"the held-out logits span {steps:.1f} int8 steps (RMS) of the range "
                     "calibrated for them: the calibration images drive the network far harder "
                     "than the held-out ones, and rounding swamps their logits")
    if peak is not None and peak > CLIPPED:
        lines.append(f"the held-out logits reach {peak:.1f}x the range calibrated for them and "
                     "are clipped: the calibration images drive the network less than these")
    if report.model.weights == RANDOM_INIT:
        lines.append("the network has random weights: untrained, it can answer some images "
                     "a hundred times more strongly than others and keeps its top two scores "
                     "close, so fidelity on a few held-out photos varies from one draw of "
                     "weights to the next (MobileNet V3 Large: 0.6 to 21 dB); measure with "
                     "trained --weights")
    tries = []
    if report.calibration and report.calibration.get("expanded_with_crops_and_flips"):
        tries.append("--calibration with a few hundred images like the ones the model will see")
    if conversion.mode == "int8":
        if conversion.bias_correction == "none":
            tries.append("--bias_correction auto")
        if conversion.per_tensor:
            tries.append("per-channel weights (drop --per_tensor) where the target allows")
        elif not conversion.equalize:
            tries.append("--equalize")
        tries.append("--debug_quantization to find the worst layers, then --denylist them")
        tries.append("quantization-aware fine-tuning (tfmobile.train --quantization_aware_epochs)")
    if tries:
        lines.append("try: " + "; ".join(tries))
    return lines


def print_edgetpu_summary(section: dict) -> None:
    analysis, compiler = section["analysis"], section["compiler"]
    print(f"  Edge TPU (offline analysis): {analysis['edgetpu_operations']} of "
          f"{analysis['total_operations']} ops map; {analysis['verdict']['text']}")
    if not compiler["ran"]:
        print(f"  Edge TPU compiler: not run: {compiler['reason']}")
    elif not compiler["compiled"]:
        print(f"  Edge TPU compiler: FAILED: {compiler['reason']}")
    else:
        from converters.edgetpu_compiler import model_log

        log = model_log(compiler)
        differs = section["analysis_vs_compiler"]
        print(f"  Edge TPU compiler {compiler['version']}: {compiler['model']}, "
              f"{log['edgetpu_operations']} ops on the Edge TPU, {log['cpu_operations']} on the "
              f"CPU; " + ("agrees with the analysis" if not differs else
                          f"differs from the analysis in {len(differs)} row(s) (see the report)"))


def main(argv):
    del argv
    # Everything the user gave is checked before TensorFlow is imported (seconds): a usage
    # error answers at once, and nothing is written.
    mode = mode_from_flags()
    args = model_flags.model_args(FLAGS)
    if FLAGS.edgetpu:
        args = edgetpu_profile(FLAGS.model, args)
    compiler_flags = edgetpu_compiler_flags()
    identity = model_flags.identity_from_flags(FLAGS, args)
    from tfmobile import models

    detector = models.entry(identity.name).task == "detection"
    if not detector:
        for flag in ("raw_outputs", *POSTPROCESS_FLAGS):
            if FLAGS[flag].present:
                raise cli.UsageError(f"--{flag} applies to detectors (ssdlite_*, yolo_*)")
    from calibration import sources

    try:
        image_set = sources.load(FLAGS.calibration)
    except sources.SourceError as err:
        raise cli.UsageError(str(err)) from None
    out_dir = check_output_dir(FLAGS.output_dir)
    if detector:
        conversion = detector_conversion(mode)
        cli.quiet_tensorflow(FLAGS.verbose)
        try:
            tflite_path, report_path, report = convert_detector_model(
                identity, conversion, out_dir,
                image_set=image_set if FLAGS.calibration else None,
                calibration_samples=FLAGS.calibration_samples, eval_samples=FLAGS.eval_samples,
                verbose=FLAGS.verbose, edgetpu_flags=compiler_flags)
        except ConversionError as err:
            print(f"tfmobile.convert: conversion failed: {err}", file=sys.stderr)
            return 1
        except WriteError as err:
            raise cli.Failure(str(err)) from None
        print_detector_summary(report, tflite_path, report_path)
        compiler = (report.edgetpu or {}).get("compiler", {})
        return 1 if compiler.get("ran") and not compiler.get("compiled") else 0
    cli.quiet_tensorflow(FLAGS.verbose)
    from converters import pipeline

    conversion = Conversion(
        mode=mode,
        io_type="uint8" if FLAGS.edgetpu else FLAGS.io_type or "",
        per_tensor=FLAGS.per_tensor,
        expand_hard_swish=FLAGS.expand_hard_swish,
        float_depthwise=FLAGS.float_depthwise,
        denylist=tuple(FLAGS.denylist),
        edgetpu=FLAGS.edgetpu,
        equalize=FLAGS.equalize,
        ranges=FLAGS.ranges,
        bias_correction=FLAGS.bias_correction,
        adaround=FLAGS.adaround,
    )
    request = pipeline.Request(
        conversion=conversion,
        calibration_samples=FLAGS.calibration_samples,
        eval_samples=FLAGS.eval_samples,
        debug_quantization=FLAGS.debug_quantization,
    )
    try:
        tflite_path, report_path, report = convert_zoo_model(
            identity, request, out_dir, image_set=image_set, verbose=FLAGS.verbose,
            edgetpu_flags=compiler_flags)
    except ConversionError as err:
        print(f"tfmobile.convert: conversion failed: {err}", file=sys.stderr)
        return 1
    except WriteError as err:
        raise cli.Failure(str(err)) from None
    print_summary(report, tflite_path, report_path)
    compiler = (report.edgetpu or {}).get("compiler", {})
    return 1 if compiler.get("ran") and not compiler.get("compiled") else 0


if __name__ == "__main__":
    cli.run(main)

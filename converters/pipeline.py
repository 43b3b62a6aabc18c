"""One conversion, start to finish: Keras model + image source -> .tflite bytes + report.

The model goes through a SavedModel with a fixed batch-1 signature and
TFLiteConverter.from_saved_model. Fidelity is measured against the float Keras model on images
the calibration did not see.
"""

from __future__ import annotations

import dataclasses
import datetime
import tempfile
import time

import keras
import numpy as np

from calibration import sources
from calibration.preprocess import Preprocessing
from converters import fidelity, litert, ptq, quantize, report, rewrite, tflite
from tfmobile_core.records import (METADATA_NAME, ArtifactId, Conversion, ConversionReport,
                                   Fidelity, GraphFacts, ModelIdentity, ModelStats)

CONVERTER_PATH = "SavedModel (batch-1 signature) -> TFLiteConverter.from_saved_model"
EMPIRICAL_BIAS_SAMPLES = 32  # calibration samples each layer's output mean is measured on
STATS_SAMPLES = 128  # calibration samples activation statistics (means, histograms) are kept on
CHECK_SAMPLES = 32  # others, on which --bias_correction auto compares the corrections
ADAROUND_SAMPLES = 32  # calibration samples AdaRound learns each layer's rounding on
# Why the int8 defaults are what they are (the measurement is in README, "int8 accuracy").
DEFAULTS_MEASURED = ("bias correction 'auto' (the best of none, analytic and empirical on "
                     "calibration samples), min/max ranges, cross-layer equalization with "
                     "--per_tensor only: on Google's float MobileNet V1 0.25 (1001 classes) and "
                     "500 ImageNet photographs, bias correction took top-1 agreement with float "
                     "from 71% to 87% and per-tensor top-1 from 1.6% to within 0.5 points of "
                     "float; MSE ranges and per-channel equalization gave nothing (README)")


class RequestError(ValueError):
    """The request names something the model does not have (a --denylist node); one line."""


@dataclasses.dataclass
class Request:
    """What to make (the Conversion record) and how many images to spend on it."""

    conversion: Conversion = Conversion()
    calibration_samples: int = 300
    eval_samples: int = 64
    debug_quantization: bool = False
    debug_samples: int = 32


@dataclasses.dataclass
class Result:
    """The converted model and everything its report says about the conversion."""

    content: bytes
    artifact: GraphFacts
    fidelity: Fidelity
    seconds: float
    quantization: dict | None
    preprocessing: dict
    calibration: dict | None
    layer_errors: list | None

    def report(self, identity: ModelIdentity, stats: ModelStats,
               conversion: Conversion) -> ConversionReport:
        return ConversionReport(
            model=identity, stats=stats, conversion=conversion, artifact=self.artifact,
            seconds=self.seconds, converter_path=CONVERTER_PATH,
            quantization=self.quantization, preprocessing=self.preprocessing,
            calibration=self.calibration, fidelity=self.fidelity,
            layer_errors=self.layer_errors, versions=report.versions(),
            git_commit=report.git_commit(),
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


def draw(images: list[np.ndarray], count: int, seed: int) -> tuple[list[np.ndarray], bool]:
    """`count` images spread evenly over the source, or all of them expanded with crops and flips.

    Evenly, not the first `count`: sources are read in path order, so a prefix of a folder of
    class subfolders would calibrate on some classes only.
    """
    if len(images) >= count:
        picks = np.linspace(0, len(images) - 1, count).round().astype(int)
        return [images[i] for i in picks], False
    return sources.expand(images, count, seed=seed), True


def spread(batch: np.ndarray, count: int) -> np.ndarray:
    """Up to `count` samples of `batch` taken at an even stride (its order follows the source's)."""
    return batch[:: max(len(batch) // count, 1)][:count]


def correct_biases(content: bytes, calibrated: bytes, stats, samples: np.ndarray, method: str,
                   progress) -> tuple[bytes, dict]:
    """The int8 model with its biases corrected as `method` says, and what was done.

    'auto' makes all three (none, analytic, empirical) and keeps the one whose scores come
    closest to float (SQNR) on calibration samples the empirical correction did not see. On
    trained networks that is the empirical one; where calibration and the images differ in how
    hard they drive the network (random weights: 100-fold between images), a correction fitted
    to the calibration means can hurt, and the check catches it.
    """
    correcting, checking = samples[0::2][:EMPIRICAL_BIAS_SAMPLES], samples[1::2][:CHECK_SAMPLES]
    candidates = {"none": (content, 0)}
    if method != "none":
        candidates["analytic"] = ptq.correct_bias(content, calibrated, stats)
    if method in ("empirical", "auto"):
        candidates["empirical"] = ptq.correct_bias_empirically(
            candidates["analytic"][0], calibrated, correcting, progress)
    info = {"method": method,
            "layers_analytic": candidates["analytic"][1] if "analytic" in candidates else 0,
            "layers_empirical": candidates["empirical"][1] if "empirical" in candidates else 0,
            "empirical_samples": len(correcting) if "empirical" in candidates else 0}
    if method != "auto":
        return candidates[method][0], {**info, "applied": method}
    reference = litert.run(litert.load(calibrated), checking)
    sqnr = {name: round(fidelity.compare(reference, litert.run(litert.load(made), checking))
                        ["sqnr_db"], 2) for name, (made, _) in candidates.items()}
    applied = max(sqnr, key=sqnr.get)
    return candidates[applied][0], {**info, "applied": applied, "check_samples": len(checking),
                                    "sqnr_db_on_check_samples": sqnr}


def convert(
    model: keras.Model,
    image_set: sources.ImageSet,
    request: Request,
    progress=None,
    artifact_id: ArtifactId | None = None,
) -> Result:
    """`progress(iterable, total, desc)` wraps the calibration loop (a progress bar).
    `artifact_id` is embedded in the .tflite (metadata entry tfmobile.artifact), so the model
    says what it is wherever it is copied."""
    conversion = request.conversion
    started = time.perf_counter()
    input_size = model.input_shape[1]
    preprocessing = Preprocessing(input_size)
    calibration_images, held_out = image_set.split()
    held_out_source = image_set.source
    if not held_out:  # too few images to spare one: measure on the embedded held-out photos
        held_out = sources.load(sources.EMBEDDED).split()[1]
        held_out_source = sources.EMBEDDED
    eval_images, eval_expanded = draw(held_out, request.eval_samples, seed=1)
    eval_batch = preprocessing.batch(eval_images)
    denylisted_ops = [d for d in conversion.denylist if d.isupper()]
    denylisted_nodes = [d for d in conversion.denylist if not d.isupper()]

    layer_errors = None
    calibration_info = None
    with tempfile.TemporaryDirectory(prefix="tfmobile-savedmodel-") as saved_model:
        tflite.export_saved_model(model, saved_model)
        if conversion.mode == "int8":
            cal_images, cal_expanded = draw(calibration_images, request.calibration_samples, seed=0)
            cal_batch = preprocessing.batch(cal_images)
            wrap = progress or (lambda it, total, desc: it)
            float_content = tflite.convert_saved_model(saved_model, "float32")
            pairs_equalized = 0
            if conversion.equalize:  # before calibration: it changes the activations' ranges
                maxima = ptq.channel_maxima(float_content, cal_batch)
                float_content, pairs_equalized = ptq.equalize(float_content, maxima)
            calibrated = quantize.calibrate_tflite(
                float_content, lambda: wrap(iter(cal_batch), len(cal_batch), "calibrating"))
            stats = None
            if conversion.ranges == "mse" or conversion.bias_correction != "none":
                # Means and histograms settle long before calibration's min/max does.
                stats = ptq.activation_stats(calibrated, spread(cal_batch, STATS_SAMPLES))
            ranges_set = 0
            if conversion.ranges == "mse":
                calibrated, ranges_set = ptq.mse_ranges(calibrated, stats)
            calibrated, ranges_tightened = quantize.tighten_ranges(calibrated)
            if denylisted_nodes:  # the quantizer ignores a name it does not find
                graph = litert.read_model(calibrated).subgraphs[0]
                names = {t.name.decode() for t in graph.tensors}
                missing = [n for n in denylisted_nodes if n not in names]
                if missing:
                    raise RequestError(f"--denylist {missing[0]!r} is neither an op type (upper "
                                       "case) nor a node of the model; --debug_quantization "
                                       "lists its nodes")
            content = quantize.quantize(
                calibrated, io_type=conversion.io_type, per_tensor=conversion.per_tensor,
                denylisted_ops=denylisted_ops, denylisted_nodes=denylisted_nodes,
            )
            layers_rounded = 0
            if conversion.adaround:  # before bias correction, which corrects what it rounded
                content, layers_rounded = ptq.adaround(
                    content, calibrated, spread(cal_batch, ADAROUND_SAMPLES), progress=wrap)
            hard_swish_expanded = 0
            if conversion.expand_hard_swish:
                content, hard_swish_expanded = rewrite.expand_hard_swish(content)
            content, bias_info = correct_biases(content, calibrated, stats, cal_batch,
                                               conversion.bias_correction, wrap)
            if request.debug_quantization:
                layer_errors = quantize.layer_errors(
                    calibrated, lambda: iter(cal_batch[: request.debug_samples]),
                    per_tensor=conversion.per_tensor, denylisted_ops=denylisted_ops,
                    denylisted_nodes=denylisted_nodes,
                )
            calibration_info = {**image_set.describe(), "calibration_images": len(calibration_images),
                                "samples": len(cal_batch), "expanded_with_crops_and_flips": cal_expanded}
        else:
            content = tflite.convert_saved_model(saved_model, conversion.mode)
            if conversion.mode == "dynamic" and conversion.float_depthwise:
                content, depthwise_in_float = rewrite.float_depthwise_weights(content)
    if artifact_id is not None:
        content = litert.with_metadata(content, METADATA_NAME, artifact_id.to_json())
    conversion_seconds = time.perf_counter() - started

    facts = report.graph_facts(content)
    reference = model.predict(eval_batch, verbose=0, batch_size=16)
    converted = litert.run(litert.load(content), eval_batch)
    for what, logits in (("the Keras model", reference), ("the converted model", converted)):
        if not np.isfinite(logits).all():  # fidelity would be NaN, or read as "identical"
            raise ValueError(f"{what} gives NaN or infinite logits on the held-out images: "
                             "its weights overflow")
    quantization = None
    if conversion.mode == "int8":
        quantization = {
            "granularity": "per-tensor" if conversion.per_tensor else "per-channel",
            "ops_set": "TFLITE_BUILTINS_INT8",
            "ranges": ("minimum quantization error (MSE) over the calibration histogram"
                       if conversion.ranges == "mse" else "min/max over the calibration samples"),
            "ranges_set_by_mse": ranges_set,
            "ranges_tightened_to_reader_domain": ranges_tightened,
            "cross_layer_equalization": {"on": conversion.equalize, "pairs": pairs_equalized},
            "bias_correction": bias_info,
            "adaround": {"on": conversion.adaround, "layers_changed": layers_rounded,
                         "iterations": ptq.ADAROUND_ITERATIONS if conversion.adaround else 0},
            "defaults_measured": DEFAULTS_MEASURED,
            "hard_swish_expanded_to_add_mul": hard_swish_expanded,
            "kept_in_float": [dict(op) for op in facts.float_ops] if conversion.denylist else [],
        }
    if conversion.mode == "dynamic":
        quantization = {
            "weights": "int8, per channel; activations float, quantized on the fly",
            "depthwise_filters_in_float32": depthwise_in_float if conversion.float_depthwise else 0,
        }
    held_out_info = {"source": held_out_source, "images": len(held_out),
                     "samples": len(eval_batch), "expanded_with_crops_and_flips": eval_expanded}
    if conversion.mode == "int8":  # the summary's warning says why fidelity is poor
        held_out_info.update(fidelity.range_use(reference, calibrated))
    return Result(
        content=content,
        artifact=facts,
        fidelity=fidelity.measure(reference, converted, held_out_info),
        seconds=round(conversion_seconds, 2),
        quantization=quantization,
        preprocessing={**preprocessing.describe(), "input_range": [-1.0, 1.0],
                       "steps": "resize shorter side to input_size / crop_fraction, centre "
                                "crop, x / 127.5 - 1"},
        calibration=calibration_info,
        layer_errors=layer_errors,
    )

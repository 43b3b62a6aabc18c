"""Zoo network -> converted .tflite + its report on disk, for the convert CLI and the benchmark
harness alike; and the stock conversion of the same network, to compare with.

A model and its report are one result: both are written (under temporary names, then renamed)
or neither is. The file name is the ArtifactId's stem, derived from the records, and the
ArtifactId is also embedded in the .tflite.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

from tfmobile_core import atomic
from tfmobile_core import cli
from tfmobile_core.records import (METADATA_NAME, ArtifactId, Conversion, ConversionReport, ModelIdentity,
                                   ModelStats)


class ConversionError(Exception):
    """The TensorFlow converter failed; the message is its last line."""


class WriteError(Exception):
    """The model and its report could not be written (a full disk, a refused write); neither
    was, and files of the same name from before are untouched."""


def paths(out_dir: pathlib.Path, artifact: ArtifactId) -> tuple[pathlib.Path, pathlib.Path]:
    """Where the artifact and its report go: <out_dir>/<stem>.tflite and <stem>.json."""
    stem = artifact.stem()
    return out_dir / f"{stem}.tflite", out_dir / f"{stem}.json"


def _last_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[-1]


def _stats(model) -> ModelStats:
    from tfmobile.profile import profile

    stats = profile(model)
    return ModelStats(params=stats.params, macs=stats.macs)


def _build(identity: ModelIdentity):
    from tfmobile import model_flags

    weights = None if identity.weights == "random init" else identity.weights
    if weights is None:
        # Random weights are seeded, so one command gives one model, and one report, on every
        # run and machine (an unseeded draw once put a test's SQNR at 11 dB instead of 26).
        import keras

        keras.utils.set_random_seed(0)
    return model_flags.build_model(identity.name, weights=weights, classifier_activation=None,
                                   **identity.build_args())


def _write(report: ConversionReport, content: bytes, out_dir: pathlib.Path) -> ConversionReport:
    tflite_path, report_path = paths(out_dir, report.artifact_id)
    report.artifact = dataclasses.replace(report.artifact, path=str(tflite_path))
    try:
        atomic.write_together({tflite_path: content,
                               report_path: atomic.json_bytes(report.to_json())})
    except OSError as err:
        raise WriteError(f"cannot write {tflite_path.name} and its report in {out_dir}: "
                         f"{cli.describe_os_error(err)}; nothing was written") from None
    return report


def convert_zoo_model(identity: ModelIdentity, request, out_dir: pathlib.Path, *,
                      image_set=None, verbose: bool = False, progress: bool = True,
                      edgetpu_flags=None) -> tuple[pathlib.Path, pathlib.Path, ConversionReport]:
    """Builds the network `identity` names, converts it as `request` asks and writes
    `<stem>.tflite` and `<stem>.json` together.

    An Edge TPU conversion (request.conversion.edgetpu) adds the offline analysis, and the
    compiler's output where it is installed (converters.edgetpu_compiler), to the report; the
    compiler gets `edgetpu_flags` (converters.edgetpu_flags.CompilerFlags), and so does the
    analysis.

    Raises UsageError for bad arguments, ConversionError when the converter fails and
    WriteError when the files cannot be written (nothing is left behind then).
    """
    from calibration import sources
    from converters import pipeline

    if image_set is None:
        image_set = sources.load(None)
    model = _build(identity)
    artifact_id = ArtifactId(identity, request.conversion)
    try:
        with cli.native_output_silenced(not verbose) as console:
            result = pipeline.convert(model, image_set, request, artifact_id=artifact_id,
                                      progress=cli.progress_bar(console) if progress else None)
    except pipeline.RequestError as err:  # an option naming what the model lacks (a node)
        raise cli.UsageError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - the converter fails in many ways; say which
        raise ConversionError(_last_line(err)) from err
    report = _write(result.report(identity, _stats(model), request.conversion), result.content,
                    out_dir)
    tflite_path, report_path = paths(out_dir, artifact_id)
    if request.conversion.edgetpu:
        from converters.edgetpu_compiler import edgetpu_report

        report.edgetpu = edgetpu_report(tflite_path, result.content, edgetpu_flags)
        atomic.write_bytes(report_path, atomic.json_bytes(report.to_json()))
    return tflite_path, report_path, report


def convert_stock(identity: ModelIdentity, mode: str, out_dir: pathlib.Path, *,
                  calibration_samples: int = 300, verbose: bool = False) -> pathlib.Path:
    """keras.applications' twin of the zoo network `identity` (random weights), converted the
    stock way (converters.stock) and written with its report; returns the .tflite path.

    Raises ValueError for a network without a keras.applications equivalent, and
    ConversionError when the converter fails.
    """
    from calibration import sources
    from calibration.preprocess import Preprocessing
    from converters import pipeline, report as report_lib, stock
    from tfmobile import models

    application = models.entry(identity.name).keras_application
    if application is None:
        raise ValueError(f"{identity.name} has no keras.applications equivalent; stock: takes "
                         f"{', '.join(stock_available())}")
    build_args = dict(alpha=identity.alpha, input_size=identity.input_size,
                      num_classes=identity.num_classes, include_top=True, weights=None)
    # Ours, built with the same arguments, gives the operation count (same architecture:
    # tests/test_keras_equivalence.py checks them layer for layer).
    try:
        ours = models.build(identity.name, **build_args, **identity.variant)
        # Logits, as the zoo models the converter writes give.
        keras_model = application(**build_args, **identity.variant, classifier_activation=None)
    except ValueError as err:  # arguments keras.applications (or ours) cannot build
        raise cli.UsageError(f"stock:{identity.name}: {_last_line(err)}") from None
    artifact_id = ArtifactId(identity, Conversion(mode=mode)).stock_twin()

    started = time.perf_counter()
    calibration = None
    if mode == "int8":
        images, _ = sources.load(None).split()
        picked, _ = pipeline.draw(images, calibration_samples, seed=0)
        calibration = Preprocessing(identity.input_size).batch(picked)
    try:
        with cli.native_output_silenced(not verbose):
            content = stock.convert_keras_model(keras_model, mode, calibration)
    except Exception as err:  # noqa: BLE001 - the converter fails in many ways; say which
        raise ConversionError(_last_line(err)) from err
    from converters import litert

    content = litert.with_metadata(content, METADATA_NAME, artifact_id.to_json())
    report = ConversionReport(
        model=artifact_id.model, stats=_stats(ours), conversion=artifact_id.conversion,
        artifact=report_lib.graph_facts(content),
        seconds=round(time.perf_counter() - started, 2),
        converter_path=f"keras.applications.{keras_model.name} -> {stock.PATH}",
        versions=report_lib.versions(), git_commit=report_lib.git_commit())
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(report, content, out_dir)
    return paths(out_dir, artifact_id)[0]


def stock_available() -> list[str]:
    """The zoo names with a keras.applications equivalent."""
    from tfmobile import models

    return [name for name in models.available() if models.entry(name).keras_application]


# Detectors: calibration and fidelity images. Without --calibration, the composed real-image
# detection set (calibration.detection_set): photographs with objects pasted in, the kind of
# image a detector fires on (plain photographs would calibrate the class scores on near-silence).
DETECTION_CALIBRATION_SEED = 1  # not the training images (seed 0)
DETECTOR_CONVERTER_PATH = ("SavedModel (batch-1 signature) -> TFLiteConverter.from_saved_model "
                           "(the network), then TFLite_Detection_PostProcess appended with "
                           "constant anchors (converters.detection)")


def pipeline_path() -> str:
    from converters import pipeline

    return pipeline.CONVERTER_PATH


def detection_images(image_set, input_size: int, calibration_samples: int, eval_samples: int):
    """(calibration, evaluation) float batches, each image stretched to input_size as the
    detectors take it: the composed set's train and val splits, or the user's images (every
    4th held out for evaluation)."""
    import numpy as np

    from tfmobile.detection import augment, datasets

    if image_set is None:
        calibration = datasets.composed_set(calibration_samples, input_size,
                                            seed=DETECTION_CALIBRATION_SEED, split="train")
        evaluation = datasets.composed_set(eval_samples, input_size,
                                           seed=DETECTION_CALIBRATION_SEED, split="val")
        calibration = [s.image for s in calibration]
        evaluation = [s.image for s in evaluation]
    else:
        from converters import pipeline

        cal_images, held_out = image_set.split()
        calibration, _ = pipeline.draw(cal_images, calibration_samples, seed=0)
        evaluation, _ = pipeline.draw(held_out or cal_images, eval_samples, seed=1)

    def batch(images):
        no_boxes = np.zeros((0, 4), np.float32)
        stretched = [augment.resize(image, no_boxes, input_size)[0] for image in images]
        return augment.to_network_input(np.stack(stretched))

    return batch(calibration), batch(evaluation)


def convert_detector_model(identity: ModelIdentity, conversion: Conversion, out_dir: pathlib.Path,
                           *, image_set=None, calibration_samples: int = 300,
                           eval_samples: int = 64, verbose: bool = False, progress: bool = True,
                           edgetpu_flags=None) -> tuple[pathlib.Path, pathlib.Path, ConversionReport]:
    """The detector `identity` names, converted as `conversion` says (the network in its mode,
    then TFLite_Detection_PostProcess unless conversion.raw_outputs), and written with its
    report. Errors as convert_zoo_model's."""
    import datetime

    from converters import detection, report as report_lib
    from tfmobile.detection import families

    model = _build(identity)
    family = families.of(model)
    anchors = family.anchors(model)
    deploy = family.deploy(model)
    postprocess = None
    if not conversion.raw_outputs:
        try:
            postprocess = detection.PostProcess(identity.num_classes, **dict(conversion.postprocess))
        except (TypeError, ValueError) as err:
            raise cli.UsageError(f"post-processing: {err}") from None
    calibration, evaluation = detection_images(image_set, identity.input_size,
                                               calibration_samples, eval_samples)
    started = time.perf_counter()
    try:
        with cli.native_output_silenced(not verbose) as console:
            result = detection.convert_detector(
                deploy, anchors, calibration, evaluation, mode=conversion.mode,
                io_type=conversion.io_type, postprocess=postprocess,
                expand_hard_swish=conversion.expand_hard_swish,
                float_depthwise=conversion.float_depthwise, tail=family.tail,
                float_tail=conversion.edgetpu,
                progress=cli.progress_bar(console) if progress else None, verbose=verbose)
    except Exception as err:  # noqa: BLE001 - the converter fails in many ways; say which
        raise ConversionError(_last_line(err)) from err
    artifact_id = ArtifactId(identity, conversion)
    from converters import litert

    content = litert.with_metadata(result.content, METADATA_NAME, artifact_id.to_json())
    report = ConversionReport(
        model=identity, stats=_stats(model), conversion=conversion,
        artifact=report_lib.graph_facts(content), seconds=round(time.perf_counter() - started, 2),
        converter_path=DETECTOR_CONVERTER_PATH if postprocess else pipeline_path(),
        quantization=result.quantization,
        preprocessing={"input_size": identity.input_size, "input_range": [-1.0, 1.0],
                       "steps": "resize (stretch) to input_size x input_size, x / 127.5 - 1"},
        calibration={"source": "composed detection set (calibration.detection_set)"
                     if image_set is None else image_set.source,
                     "samples": len(calibration)} if conversion.mode == "int8" else None,
        detection=result.to_json(),
        versions=report_lib.versions(), git_commit=report_lib.git_commit(),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    report = _write(report, content, out_dir)
    tflite_path, report_path = paths(out_dir, artifact_id)
    if conversion.edgetpu:
        from converters.edgetpu_compiler import edgetpu_report

        report.edgetpu = edgetpu_report(tflite_path, content, edgetpu_flags)
        atomic.write_bytes(report_path, atomic.json_bytes(report.to_json()))
    return tflite_path, report_path, report

"""Zoo network -> converted .tflite + JSON report on disk, for the convert CLI and the
benchmark harness alike."""

from __future__ import annotations

import pathlib

from tfmobile import cli


def artifact_stem(name: str, model_args: dict, mode: str, io_type: str | None = None) -> str:
    """e.g. shufflenet_v1_1_224_g3_int8: network, alpha, input size, variant, mode, and the
    input/output type where it is not the mode's own (..._int8_uint8_io for the Edge TPU)."""
    variant = "".join(
        f"_g{value}" if key == "groups" else VARIANT_SUFFIXES[key]
        for key, value in model_args.items() if key in VARIANT_SUFFIXES and value
    )
    io = f"_{io_type}_io" if io_type and io_type != ("int8" if mode == "int8" else "float32") else ""
    return f"{name}_{model_args.get('alpha', 1.0):g}_{model_args.get('input_size', 224)}{variant}_{mode}{io}"


VARIANT_SUFFIXES = {"groups": "_g", "minimalistic": "_min", "split_groups": "_split"}


def convert_zoo_model(name: str, model_args: dict, request, out_dir: pathlib.Path, *,
                      weights: str | None = None, image_set=None, verbose: bool = False,
                      progress: bool = True, edgetpu: bool = False,
                      ) -> tuple[pathlib.Path, pathlib.Path, dict]:
    """Builds a zoo network, converts it and writes `<stem>.tflite` and `<stem>.json` atomically.

    `edgetpu` adds the Edge TPU analysis, and the compiler's output where it is installed
    (converters.edgetpu_compiler), to the report.

    Raises cli.UsageError for bad arguments and ConversionError when the converter fails.
    """
    from calibration import sources
    from converters import pipeline
    from tfmobile import atomic
    from tfmobile.profile import profile

    if image_set is None:
        image_set = sources.load(None)
    model = cli.build_model(name, weights=weights, classifier_activation=None, **model_args)
    try:
        with cli.native_output_silenced(not verbose) as console:
            result = pipeline.convert(model, image_set, request,
                                      progress=cli.progress_bar(console) if progress else None)
    except Exception as err:  # noqa: BLE001 - the converter fails in many ways; say which
        reason = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        raise ConversionError(reason) from err
    stats = profile(model)
    report = {
        "model": {"name": name, **model_args, "weights": weights or "random init",
                  "output": "logits", "params": stats.params, "macs": stats.macs},
        **result.report,
    }
    stem = artifact_stem(name, model_args, request.mode, request.io_type)
    tflite_path, report_path = out_dir / f"{stem}.tflite", out_dir / f"{stem}.json"
    report["artifact"]["path"] = str(tflite_path)
    atomic.write_bytes(tflite_path, result.content)
    if edgetpu:
        from converters.edgetpu_compiler import edgetpu_report

        report["edgetpu"] = edgetpu_report(tflite_path, result.content)
    atomic.write_json(report_path, report)
    return tflite_path, report_path, report


class ConversionError(Exception):
    """The TensorFlow converter failed; the message is its last line."""

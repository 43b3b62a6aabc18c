"""Zoo network -> converted .tflite + JSON report on disk, for the convert CLI and the
benchmark harness alike."""

from __future__ import annotations

import pathlib

from tfmobile import cli


def artifact_stem(name: str, model_args: dict, mode: str) -> str:
    """e.g. shufflenet_v1_1_224_g3_int8: network, alpha, input size, variant, mode."""
    variant = "".join(
        f"_g{model_args['groups']}" if k == "groups" else "_min"
        for k in model_args if k in ("groups", "minimalistic") and model_args[k]
    )
    return f"{name}_{model_args.get('alpha', 1.0):g}_{model_args.get('input_size', 224)}{variant}_{mode}"


def convert_zoo_model(name: str, model_args: dict, request, out_dir: pathlib.Path, *,
                      weights: str | None = None, image_set=None, verbose: bool = False,
                      progress: bool = True) -> tuple[pathlib.Path, pathlib.Path, dict]:
    """Builds a zoo network, converts it and writes `<stem>.tflite` and `<stem>.json` atomically.

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
    stem = artifact_stem(name, model_args, request.mode)
    tflite_path, report_path = out_dir / f"{stem}.tflite", out_dir / f"{stem}.json"
    report["artifact"]["path"] = str(tflite_path)
    atomic.write_bytes(tflite_path, result.content)
    atomic.write_json(report_path, report)
    return tflite_path, report_path, report


class ConversionError(Exception):
    """The TensorFlow converter failed; the message is its last line."""

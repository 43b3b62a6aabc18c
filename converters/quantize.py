"""Full-integer int8 post-training quantization from a calibration set.

One calibration pass records every tensor's range; the quantized model, a denylisted variant
(named ops or nodes kept in float) and the numeric-verify model the QuantizationDebugger reads
are all produced from that one calibrated model, the way TFLiteConverter and the debugger do
it themselves (`convert.mlir_quantize`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

IO_TYPES = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}


@dataclasses.dataclass
class Int8Result:
    content: bytes
    layer_errors: list[dict] | None = None  # --debug_quantization


def _mlir_quantize(calibrated: bytes, **kwargs) -> bytes:
    # The call TFLiteConverter makes after calibration (and QuantizationDebugger for
    # denylists); public entry points do not take a pre-calibrated model.
    from tensorflow.lite.python import convert

    return convert.mlir_quantize(calibrated, **kwargs)


def calibrate(saved_model_dir: str, samples: Callable[[], Iterable[np.ndarray]]) -> bytes:
    """A float model carrying the recorded range of every tensor."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([s[None].astype(np.float32)] for s in samples())
    converter._experimental_calibrate_only = True  # noqa: SLF001 - see module docstring
    return converter.convert()


def quantize(
    calibrated: bytes,
    *,
    io_type: str = "int8",
    per_tensor: bool = False,
    denylisted_ops: list[str] | None = None,
    denylisted_nodes: list[str] | None = None,
) -> bytes:
    io = IO_TYPES[io_type]
    return _mlir_quantize(
        calibrated,
        disable_per_channel=per_tensor,
        input_data_type=io,
        output_data_type=io,
        denylisted_ops=denylisted_ops or None,
        denylisted_nodes=denylisted_nodes or None,
    )


def _sqnr_db(float_tensors, quant_tensors, scale, zero_point) -> float:
    """Signal power of a layer's float output over the power of its int8 error, in dB."""
    signal = sum(float(np.sum(np.square(f))) for f in float_tensors)
    noise = sum(
        float(np.sum(np.square(f - (q.astype(np.float32) - zero_point) * scale)))
        for f, q in zip(float_tensors, quant_tensors)
    )
    return 10 * np.log10(signal / noise) if noise > 0 else float("inf")


def layer_errors(
    calibrated: bytes,
    samples: Callable[[], Iterable[np.ndarray]],
    *,
    per_tensor: bool = False,
    denylisted_ops: list[str] | None = None,
    denylisted_nodes: list[str] | None = None,
) -> list[dict]:
    """The QuantizationDebugger's per-layer statistics, worst first.

    For every quantized op output the float and dequantized int8 values are compared on the
    samples. `sqnr_db` (signal over error power) ranks the layers: the lowest lose most.
    `rmse_per_scale` (RMS error in quantization steps) tells why: about 0.29 is rounding
    noise alone (the range is too wide for the signal), larger values mean clipping.
    """
    debug_model = _mlir_quantize(
        calibrated,
        disable_per_channel=per_tensor,
        enable_numeric_verify=True,
        denylisted_ops=denylisted_ops or None,
        denylisted_nodes=denylisted_nodes or None,
    )
    debugger = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=debug_model,
        debug_dataset=lambda: ([s[None].astype(np.float32)] for s in samples()),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            layer_direct_compare_metrics={"sqnr_db": _sqnr_db}
        ),
    )
    debugger.run()
    with tempfile.NamedTemporaryFile("w+", suffix=".csv") as dump:
        debugger.layer_statistics_dump(dump)
        dump.flush()
        dump.seek(0)
        import csv

        rows = list(csv.DictReader(dump))
    table = []
    for row in rows:
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        table.append(
            {
                "op": row["op_name"],
                "tensor": row["tensor_name"],
                "elements": int(float(row["num_elements"])),
                "scale": scale,
                "zero_point": int(float(row["zero_point"])),
                "mean_error": float(row["mean_error"]),
                "max_abs_error": float(row["max_abs_error"]),
                "rmse": mse**0.5,
                "rmse_per_scale": (mse**0.5) / scale if scale else float("nan"),
                "sqnr_db": float(row["sqnr_db"]),
            }
        )
    table.sort(key=lambda r: r["sqnr_db"])
    return table

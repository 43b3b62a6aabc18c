"""Full-integer int8 post-training quantization from a calibration set.

One calibration pass records every tensor's range; the quantized model, a denylisted variant
(named ops or nodes kept in float) and the numeric-verify model the QuantizationDebugger reads
are all produced from that one calibrated model, the way TFLiteConverter and the debugger do
it themselves (`convert.mlir_quantize`).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Callable, Iterable

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


def calibrate_tflite(float_content: bytes, samples: Callable[[], Iterable[np.ndarray]]) -> bytes:
    """calibrate() for a float .tflite (after cross-layer equalization has edited its weights):
    the calibrator TFLiteConverter runs after its own float conversion."""
    from tensorflow.lite.python.optimize import calibrator

    return calibrator.Calibrator(float_content).calibrate(
        lambda: ([s[None].astype(np.float32)] for s in samples()))


# What a tensor's readers can tell apart. Hard-swish is exactly 0 below -3, so a tensor read only
# by HARD_SWISH needs no int8 steps there; min/max calibration spends up to half of the grid on
# that region (MobileNet V3's pre-activation conv outputs reach -100). Clipping the recorded
# range to what the readers distinguish keeps the network's function and halves the step.
_READER_DOMAIN = {"HARD_SWISH": (-3.0, None), "RELU": (0.0, None), "RELU6": (0.0, 6.0),
                  "RELU_N1_TO_1": (-1.0, 1.0), "RELU_0_TO_1": (0.0, 1.0)}


def tighten_ranges(calibrated: bytes) -> tuple[bytes, int]:
    """`calibrated` with each activation range cut to the domain its readers distinguish.

    Returns the model and how many ranges changed.
    """
    from converters import litert

    model = litert.read_model(calibrated)
    graph = model.subgraphs[0]
    op_names = [litert.op_name(code) for code in model.operatorCodes]
    readers: dict[int, set[str]] = {}
    for op in graph.operators:
        for tensor in op.inputs:
            readers.setdefault(tensor, set()).add(op_names[op.opcodeIndex])
    changed = 0
    for index, names in readers.items():
        quant = graph.tensors[index].quantization if index >= 0 else None
        if index in graph.outputs or len(names) != 1 or quant is None or quant.min is None:
            continue
        domain = _READER_DOMAIN.get(next(iter(names)))
        if domain is None or len(quant.min) != 1:
            continue
        lo, hi = float(quant.min[0]), float(quant.max[0])
        new_lo = max(lo, domain[0]) if domain[0] is not None else lo
        new_hi = min(hi, domain[1]) if domain[1] is not None else hi
        if (new_lo, new_hi) != (lo, hi) and new_hi > new_lo:
            quant.min, quant.max = np.array([new_lo], np.float32), np.array([new_hi], np.float32)
            changed += 1
    return litert.write_model(model), changed


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
        for f, q in zip(float_tensors, quant_tensors, strict=True)
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
    return layer_table(rows)


def layer_table(rows: list[dict]) -> list[dict]:
    """The debugger's CSV rows as the report's table, worst SQNR first. A layer int8
    reproduces exactly (an output of zeros, say) has no error and an infinite SQNR, which JSON
    cannot hold: as in the fidelity section, it is written as None (null), and sorts last."""
    table = []
    for row in rows:
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        sqnr = float(row["sqnr_db"])
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
                "rmse_per_scale": (mse**0.5) / scale if scale else None,
                "sqnr_db": sqnr if math.isfinite(sqnr) else None,
            }
        )
    table.sort(key=lambda r: math.inf if r["sqnr_db"] is None else r["sqnr_db"])
    return table

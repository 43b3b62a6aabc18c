"""Post-training quantization beyond min/max: what recovers int8 accuracy without training.

Everything here works on the .tflite graph (any zoo network, or any float classifier), from
activation statistics gathered on the calibration images alone (never labels):

- `equalize` (cross-layer equalization, Nagel et al. 2019, "Data-Free Quantization"): for a
  depthwise conv whose output only feeds a 1x1 conv, output channel c of the first is divided by
  s_c and input channel c of the second multiplied by it. The function is unchanged where the
  activation between them is positively homogeneous; the fused RELU6 is, as long as the
  channel stays under the clip, so s_c is bounded by the channel's observed maximum. Per-tensor
  weight quantization of MobileNets collapses without it: depthwise channels' ranges differ by
  orders of magnitude after batch-norm folding.
- `mse_ranges` (range setting that minimises quantization error, AIMET's "tf_enhanced"):
  each activation range is the one that minimises the expected squared error (rounding inside
  the range, clipping outside) over the calibration histogram, instead of min/max.
- `correct_bias` (bias correction, Nagel et al. 2019): the rounding error of a layer's weights
  shifts each output channel's mean by (W_q - W) . E[x]; the int32 bias takes it back.
- `adaround` (Nagel et al. 2020): each layer's weights are rounded up or down as learned on the
  calibration activations so that the layer's output, not each weight, stays closest to float.

All keep the model an ordinary int8 .tflite: only weights, biases and ranges change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from converters import litert

BINS = 2048
HEADROOM = 2.0  # equalize: how far past its calibration maximum a channel keeps its function
WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _tensors_kept(content: bytes):
    """Every intermediate tensor readable: the reference kernels (XNNPACK would fuse them away)."""
    return litert.load(content, keep_all_tensors=True)


@dataclasses.dataclass
class TensorStats:
    """One float activation tensor over the calibration samples."""

    lo: float
    hi: float
    histogram: np.ndarray  # BINS counts over [lo, hi]
    channel_mean: np.ndarray  # mean of each channel (last axis)
    channel_max: np.ndarray  # largest value of each channel


def activation_stats(calibrated: bytes, samples: Iterable[np.ndarray]) -> dict[int, TensorStats]:
    """Histogram, per-channel mean and max of every float activation (op output) tensor of the
    calibrated model, keyed by tensor index; its recorded min/max bound the histograms."""
    model = litert.read_model(calibrated)
    graph = model.subgraphs[0]
    schema = _schema()
    indices = sorted({int(t) for op in graph.operators for t in op.outputs
                      if graph.tensors[t].type == schema.TensorType.FLOAT32}
                     | {int(t) for t in graph.inputs})
    bounds = {}
    for index in indices:
        quant = graph.tensors[index].quantization
        if quant is not None and quant.min is not None and len(quant.min) == 1:
            bounds[index] = (float(quant.min[0]), float(quant.max[0]))
    interpreter = _tensors_kept(calibrated)
    sums: dict[int, np.ndarray] = {}
    maxes: dict[int, np.ndarray] = {}
    hists = {i: np.zeros(BINS, np.int64) for i in bounds}
    count = 0
    for sample in samples:
        litert.set_input(interpreter, sample)
        interpreter.invoke()
        count += 1
        for index in indices:
            value = interpreter.get_tensor(index)
            flat = value.reshape(-1, value.shape[-1]) if value.ndim > 1 else value[None]
            mean = flat.mean(axis=0, dtype=np.float64)
            sums[index] = sums.get(index, 0) + mean
            top = flat.max(axis=0)
            maxes[index] = np.maximum(maxes[index], top) if index in maxes else top
            if index in bounds:
                lo, hi = bounds[index]
                if hi > lo:
                    hists[index] += np.histogram(np.clip(flat, lo, hi), BINS, (lo, hi))[0]
    return {i: TensorStats(*bounds.get(i, (0.0, 0.0)), hists.get(i, np.zeros(BINS, np.int64)),
                           sums[i] / max(count, 1), maxes[i]) for i in indices}


def _mse_range(stats: TensorStats, levels: int = 255) -> tuple[float, float]:
    """The [lo, hi] within the recorded range that minimises rounding plus clipping error."""
    lo, hi, hist = stats.lo, stats.hi, stats.histogram.astype(np.float64)
    if hi <= lo or hist.sum() == 0:
        return lo, hi
    width = (hi - lo) / BINS
    centres = lo + (np.arange(BINS) + 0.5) * width
    # Candidate ends: the recorded ones shrunk in 1/64 steps (0 kept where the range holds it).
    fractions = np.linspace(0.02, 1.0, 50)
    his = [hi * f if hi > 0 else hi for f in fractions]
    los = [lo * f if lo < 0 else lo for f in fractions] if lo < 0 else [lo]
    best, best_range = np.inf, (lo, hi)
    for cand_lo in los:
        for cand_hi in his:
            if cand_hi <= cand_lo:
                continue
            step = (cand_hi - cand_lo) / levels
            clipped = np.clip(centres, cand_lo, cand_hi)
            inside = (centres >= cand_lo) & (centres <= cand_hi)
            error = np.where(inside, step * step / 12, (centres - clipped) ** 2)
            mse = float(np.dot(hist, error))
            if mse < best:
                best, best_range = mse, (cand_lo, cand_hi)
    return best_range


def mse_ranges(calibrated: bytes, stats: dict[int, TensorStats]) -> tuple[bytes, int]:
    """`calibrated` with each activation range set to minimise its quantization error; the
    model's output keeps min/max (its scores are what fidelity compares). Returns the model and
    how many ranges changed."""
    model = litert.read_model(calibrated)
    graph = model.subgraphs[0]
    changed = 0
    outputs = {int(i) for i in graph.outputs}
    for index, tensor_stats in stats.items():
        quant = graph.tensors[index].quantization
        if index in outputs or quant is None or quant.min is None or len(quant.min) != 1:
            continue
        lo, hi = _mse_range(tensor_stats)
        if (lo, hi) != (tensor_stats.lo, tensor_stats.hi):
            quant.min, quant.max = np.array([lo], np.float32), np.array([hi], np.float32)
            changed += 1
    return litert.write_model(model), changed


def _weighted_ops(model) -> list[tuple[int, object, str]]:
    """(position, op, kind) of every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED."""
    names = [litert.op_name(code) for code in model.operatorCodes]
    return [(i, op, names[op.opcodeIndex]) for i, op in enumerate(model.subgraphs[0].operators)
            if names[op.opcodeIndex] in WEIGHTED]


def _int_weights(model, graph, tensor_index: int) -> tuple[np.ndarray, np.ndarray, int]:
    """An int8 filter's values, its per-channel scales and the quantized dimension."""
    tensor = graph.tensors[tensor_index]
    values = np.frombuffer(bytes(model.buffers[tensor.buffer].data), np.int8).reshape(tensor.shape)
    return values, np.asarray(tensor.quantization.scale, np.float64), \
        int(tensor.quantization.quantizedDimension)


def _float_weights(float_model, name: str) -> np.ndarray | None:
    graph = float_model.subgraphs[0]
    for tensor in graph.tensors:
        if (tensor.name.decode(errors="replace") == name
                and tensor.type == _schema().TensorType.FLOAT32):
            data = float_model.buffers[tensor.buffer].data
            if data is not None and len(data):
                return np.frombuffer(bytes(data), np.float32).reshape(tensor.shape)
    return None


def _add_to_bias(model, graph, op, delta: np.ndarray) -> bool:
    """Adds `delta` (float, per output channel) to the op's int32 bias, giving a bias to an
    int8 op that has none (the converter drops an all-zero one); False for a float op."""
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        if not _give_bias(model, graph, op, delta.size):
            return False
    bias = graph.tensors[op.inputs[2]]
    if bias.type != _schema().TensorType.INT32:
        return False
    buffer = model.buffers[bias.buffer]
    values = np.frombuffer(bytes(buffer.data), np.int32).astype(np.int64)
    scale = np.asarray(bias.quantization.scale, np.float64)
    values = values + np.round(delta / scale).astype(np.int64)
    info = np.iinfo(np.int32)
    buffer.data = np.frombuffer(np.clip(values, info.min, info.max).astype(np.int32).tobytes(),
                                np.uint8)
    return True


def _give_bias(model, graph, op, channels: int) -> bool:
    """A zero int32 bias on the int8 grid TFLite requires (input scale x weight scale)."""
    schema = _schema()
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if x.type != schema.TensorType.INT8 or w.type != schema.TensorType.INT8:
        return False
    w_scale = np.asarray(w.quantization.scale, np.float64)
    scale = np.broadcast_to(x.quantization.scale[0] * w_scale, (channels,))
    buffer = schema.BufferT()
    buffer.data = np.zeros(channels * 4, np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.name = w.name + b"/bias"
    tensor.shape = np.array([channels], np.int32)
    tensor.type = schema.TensorType.INT32
    tensor.buffer = len(model.buffers) - 1
    quant = schema.QuantizationParametersT()
    quant.scale, quant.zeroPoint = [float(v) for v in scale], [0] * channels
    tensor.quantization = quant
    graph.tensors.append(tensor)
    op.inputs = np.array([*op.inputs[:2], len(graph.tensors) - 1], np.int32)
    return True


def correct_bias(quantized: bytes, float_content: bytes,
                 stats: dict[int, TensorStats]) -> tuple[bytes, int]:
    """Bias correction: each layer's int32 bias takes back the mean shift its weights'
    rounding causes, -(W_q - W) . E[x], with E[x] the per-channel mean of the layer's float input on the
    calibration images (borders of 'same' padding ignored). `float_content`: the calibrated
    float model `stats` were gathered on. Returns the model and how many layers changed."""
    model = litert.read_model(quantized)
    float_model = litert.read_model(float_content)
    graph = model.subgraphs[0]
    float_graph = float_model.subgraphs[0]
    float_index = {t.name.decode(errors="replace"): i for i, t in enumerate(float_graph.tensors)}
    changed = 0
    for _, op, kind in _weighted_ops(model):
        filt = graph.tensors[op.inputs[1]]
        name = filt.name.decode(errors="replace")
        source = _float_weights(float_model, name)
        input_name = graph.tensors[op.inputs[0]].name.decode(errors="replace")
        x_stats = stats.get(float_index.get(input_name, -1))
        if source is None or x_stats is None or filt.type != _schema().TensorType.INT8:
            continue
        values, scale, axis = _int_weights(model, graph, op.inputs[1])
        shape = [1] * values.ndim
        shape[axis] = scale.size
        error = values.astype(np.float64) * scale.reshape(shape) - source
        mean_in = x_stats.channel_mean.astype(np.float64)
        if kind == "DEPTHWISE_CONV_2D":
            shift = error.reshape(-1, error.shape[-1]).sum(axis=0) * mean_in
        elif kind == "CONV_2D":
            per_input = error.sum(axis=(1, 2))  # (out, in / groups)
            groups = mean_in.size // per_input.shape[1]
            if groups * per_input.shape[1] != mean_in.size or per_input.shape[0] % groups:
                continue
            # Output channel o of a grouped conv reads its group's slice of the input.
            group_means = mean_in.reshape(groups, -1).repeat(per_input.shape[0] // groups, axis=0)
            shift = (per_input * group_means).sum(axis=1)
        else:
            shift = error @ mean_in
        if _add_to_bias(model, graph, op, -shift):
            changed += 1
    return litert.write_model(model), changed


def correct_bias_empirically(quantized: bytes, float_content: bytes, samples: np.ndarray,
                             progress=lambda it, total, desc: it) -> tuple[bytes, int]:
    """Layer by layer in graph order, each layer's output mean on the calibration images is
    brought back to the float model's: bias += E[float] - E[int8], measured with every
    earlier layer already corrected (so it also takes back what activations' rounding and
    clipping shift, not only the weights'). A channel's shift is corrected where it exceeds
    twice its standard error over the samples; channels the fused activation clips most of the
    time are left alone: there the output mean does not follow the bias."""
    float_interp = _tensors_kept(float_content)
    float_graph = litert.read_model(float_content).subgraphs[0]
    float_index = {t.name.decode(errors="replace"): i for i, t in enumerate(float_graph.tensors)}
    float_out: dict[int, list] = {}
    model = litert.read_model(quantized)
    graph = model.subgraphs[0]
    ops = [(op, graph.tensors[op.outputs[0]].name.decode(errors="replace"))
           for _, op, _ in _weighted_ops(model)]
    wanted = {name: float_index[name] for _, name in ops if name in float_index}
    # What the int8 output can hold: float values beyond it (a range tightened to what the
    # readers distinguish, e.g. HARD_SWISH's -3) are compared clipped, as int8 stores them.
    bounds = {}
    for op, name in ops:
        quant = graph.tensors[op.outputs[0]].quantization
        if name in wanted and quant is not None and quant.scale is not None and len(quant.scale):
            bounds[wanted[name]] = ((-128 - quant.zeroPoint[0]) * quant.scale[0],
                                    (127 - quant.zeroPoint[0]) * quant.scale[0])
    for sample in samples:
        litert.set_input(float_interp, sample)
        float_interp.invoke()
        for index in wanted.values():
            value = float_interp.get_tensor(index)
            if index in bounds:
                value = np.clip(value, *bounds[index])
            float_out.setdefault(index, []).append(_channel_means(value))
    int8, int32 = _schema().TensorType.INT8, _schema().TensorType.INT32
    targets = [(op, name) for op, name in ops if name in wanted  # not the ops kept in float
               and graph.tensors[op.outputs[0]].type == int8
               and (len(op.inputs) < 3 or op.inputs[2] < 0
                    or graph.tensors[op.inputs[2]].type == int32)]
    changed = 0
    # One layer at a time, in graph order: correcting all at once from one pass also corrects
    # each layer for the shift its predecessors are about to take back, and the corrections
    # compound (MobileNet V1 0.25: agreement with float fell to 0%).
    for op, name in progress(targets, len(targets), "correcting biases"):
        out = graph.tensors[op.outputs[0]]
        interp = _interpreter_reading(model, graph, int(op.outputs[0]))
        means, clipped = [], []
        for sample in samples:
            litert.set_input(interp, sample)
            interp.invoke()
            q = interp.get_tensor(op.outputs[0]).astype(np.float64)
            means.append(_channel_means((q - out.quantization.zeroPoint[0]) * out.quantization.scale[0]))
            flat = q.reshape(-1, q.shape[-1])
            clipped.append(np.mean((flat <= -128) | (flat >= 127), axis=0))
        # Paired per image: a shift is corrected only where it stands out of its own noise
        # (twice its standard error); on small inputs a few samples' means are mostly noise.
        differences = np.asarray(float_out[wanted[name]]) - np.asarray(means)
        delta = differences.mean(axis=0)
        noise = differences.std(axis=0, ddof=1) / np.sqrt(len(differences)) \
            if len(differences) > 1 else np.full_like(delta, np.inf)
        delta[(np.abs(delta) < 2 * noise) | (np.mean(clipped, axis=0) > 0.5)] = 0.0
        if delta.any() and _add_to_bias(model, graph, op, delta):
            changed += 1
    return litert.write_model(model), changed


def _interpreter_reading(model, graph, tensor: int):
    """The model with `tensor` made an output too, on LiteRT's default (XNNPACK) kernels: a
    graph output stays readable, and XNNPACK runs it several times faster than the reference
    kernels that keeping every tensor would need."""
    outputs = graph.outputs
    if tensor not in outputs:
        graph.outputs = np.array([*outputs, tensor], np.int32)
    try:
        return litert.load(litert.write_model(model))
    finally:
        graph.outputs = outputs


def _channel_means(value: np.ndarray) -> np.ndarray:
    return value.reshape(-1, value.shape[-1]).mean(axis=0, dtype=np.float64)


_HOMOGENEOUS = {"NONE": None, "RELU": None, "RELU6": 6.0}  # fused activation -> its clip


def _float_constant(model, graph, index: int) -> np.ndarray:
    tensor = graph.tensors[index]
    return np.frombuffer(bytes(model.buffers[tensor.buffer].data), np.float32).reshape(tensor.shape)


def _set_float_constant(model, graph, index: int, values: np.ndarray) -> None:
    tensor = graph.tensors[index]
    model.buffers[tensor.buffer].data = np.frombuffer(values.astype(np.float32).tobytes(), np.uint8)


def equalize(content: bytes, channel_max: dict[str, np.ndarray] | None = None,
             sweeps: int = 4) -> tuple[bytes, int]:
    """Cross-layer equalization of a float .tflite: for every conv or depthwise conv whose output
    feeds exactly one conv or depthwise conv, output channel c of the first is divided by s_c
    and input channel c of the second multiplied by it, with s_c = sqrt(r1_c / r2_c) (r: the
    channel's largest weight magnitude), so both end up with range sqrt(r1_c r2_c).

    A fused RELU6 moves with the scale: channel c then clips at 6 s_c instead of 6. With
    `channel_max` (the largest value each op output's channels reach on the calibration images,
    keyed by tensor name), s_c is kept where the function does not change on those images:
    a channel that reaches the clip keeps s_c = 1; one whose maximum m_c stays below it may
    shrink freely (its clip, 6 s_c, was never reached) and grow while s_c >= 2 m_c / 6 (twice
    its calibration maximum stays under the clip). Without `channel_max`, pairs with a fused
    RELU6 are left alone. Returns the model and how many pairs were found.
    """
    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]
    readers: dict[int, list] = {}
    for op in graph.operators:
        for t in op.inputs:
            readers.setdefault(int(t), []).append(op)
    outputs = {int(i) for i in graph.outputs}
    pairs = []
    for op in graph.operators:
        kind = names[op.opcodeIndex]
        if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D") or len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        out = int(op.outputs[0])
        nxt = readers.get(out, [])
        if out in outputs or len(nxt) != 1 or names[nxt[0].opcodeIndex] not in (
                "CONV_2D", "DEPTHWISE_CONV_2D") or int(nxt[0].inputs[0]) != out:
            continue
        activation = litert.fused_activation(op)
        if activation not in _HOMOGENEOUS:
            continue
        if kind == "DEPTHWISE_CONV_2D" and op.builtinOptions.depthMultiplier not in (0, 1):
            continue
        if (names[nxt[0].opcodeIndex] == "DEPTHWISE_CONV_2D"
                and nxt[0].builtinOptions.depthMultiplier not in (0, 1)):
            continue
        channels = graph.tensors[out].shape[-1]
        if graph.tensors[nxt[0].inputs[1]].shape[-1] != channels:  # a grouped conv: not a pair
            continue
        pairs.append((op, kind, nxt[0], names[nxt[0].opcodeIndex], activation))
    maxes = {}
    for op, *_ in pairs:
        name = graph.tensors[op.outputs[0]].name.decode(errors="replace")
        if channel_max is not None and name in channel_max:
            maxes[id(op)] = np.asarray(channel_max[name], np.float64).copy()
    for _ in range(sweeps):
        for op, kind, nxt, next_kind, activation in pairs:
            w1 = _float_constant(model, graph, op.inputs[1]).astype(np.float64)
            b1 = _float_constant(model, graph, op.inputs[2]).astype(np.float64)
            w2 = _float_constant(model, graph, nxt.inputs[1]).astype(np.float64)
            # Output channel c of the first: axis 0 (conv) or the last (depthwise).
            r1 = (np.abs(w1).reshape(w1.shape[0], -1).max(axis=1) if kind == "CONV_2D"
                  else np.abs(w1).reshape(-1, w1.shape[-1]).max(axis=0))
            r2 = np.abs(w2).reshape(-1, w2.shape[-1]).max(axis=0)  # input channel c: last axis
            if next_kind == "CONV_2D":
                r2 = np.abs(w2).reshape(w2.shape[0], -1, w2.shape[-1]).max(axis=(0, 1))
            scale = np.ones_like(r1)
            live = (r1 > 0) & (r2 > 0)
            scale[live] = np.sqrt(r1[live] / r2[live])
            clip = _HOMOGENEOUS[activation]
            if clip is not None:
                m = maxes.get(id(op))
                if m is None:
                    continue  # where the clip falls is unknown: leave the pair as it is
                saturated = m >= clip * 0.999
                scale[saturated] = 1.0
                # Headroom: a channel may reach twice its calibration maximum on other images
                # before the moved clip changes it.
                scale = np.maximum(scale, np.minimum(1.0, HEADROOM * m / clip))
            if kind == "CONV_2D":
                w1 = w1 / scale.reshape(-1, *[1] * (w1.ndim - 1))
            else:
                w1 = w1 / scale
            b1 = b1 / scale
            w2 = w2 * scale  # input channel c is the last axis of both filter layouts
            if id(op) in maxes:
                maxes[id(op)] = maxes[id(op)] / scale
            _set_float_constant(model, graph, op.inputs[1], w1)
            _set_float_constant(model, graph, op.inputs[2], b1)
            _set_float_constant(model, graph, nxt.inputs[1], w2)
    return litert.write_model(model), len(pairs)


def channel_maxima(content: bytes, samples: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """The largest value each channel of each op output reaches on `samples`, by tensor name."""
    model = litert.read_model(content)
    graph = model.subgraphs[0]
    indices = sorted({int(t) for op in graph.operators for t in op.outputs})
    interpreter = _tensors_kept(content)
    maxes: dict[int, np.ndarray] = {}
    for sample in samples:
        litert.set_input(interpreter, sample)
        interpreter.invoke()
        for index in indices:
            value = interpreter.get_tensor(index)
            top = value.reshape(-1, value.shape[-1]).max(axis=0) if value.ndim > 1 else value
            maxes[index] = np.maximum(maxes[index], top) if index in maxes else top
    return {graph.tensors[i].name.decode(errors="replace"): m for i, m in maxes.items()}


# AdaRound's rectified sigmoid and schedule (Nagel et al. 2020, section 4 and appendix).
_ZETA, _GAMMA = 1.1, -0.1
ADAROUND_ITERATIONS = 400


def adaround(quantized: bytes, float_content: bytes, samples: np.ndarray,
             iterations: int = ADAROUND_ITERATIONS,
             progress=lambda it, total, desc: it) -> tuple[bytes, int]:
    """Learned rounding of every int8 conv, depthwise conv and fully connected filter.

    Layer by layer in graph order: the layer's input is taken from the int8 model as rounded so
    far (so later layers learn to absorb earlier layers' errors), its target output from the
    float model on the same images, and each weight's rounding, up or down from the int8 grid
    the quantizer chose (same scales), is learned to minimise the squared error of the layer's
    output (before bias and activation), with AdaRound's regulariser driving each choice to
    0 or 1. Uses `samples` (calibration images) only. Returns the model and how many filters
    changed.
    """
    import tensorflow as tf

    model = litert.read_model(quantized)
    graph = model.subgraphs[0]
    float_graph = litert.read_model(float_content).subgraphs[0]
    float_model = litert.read_model(float_content)
    float_index = {t.name.decode(errors="replace"): i for i, t in enumerate(float_graph.tensors)}
    int8 = _schema().TensorType.INT8
    ops = [(op, kind) for _, op, kind in _weighted_ops(model)
           if graph.tensors[op.inputs[1]].type == int8 and graph.tensors[op.inputs[0]].type == int8]
    float_interp = _tensors_kept(float_content)
    changed = 0
    rng = np.random.default_rng(0)
    for op, kind in progress(ops, len(ops), "learning rounding"):
        filt = graph.tensors[op.inputs[1]]
        source = _float_weights(float_model, filt.name.decode(errors="replace"))
        input_name = graph.tensors[op.inputs[0]].name.decode(errors="replace")
        if source is None or input_name not in float_index:
            continue
        values, scale, axis = _int_weights(model, graph, op.inputs[1])
        if kind == "CONV_2D" and values.shape[-1] != graph.tensors[op.inputs[0]].shape[-1]:
            continue  # a grouped conv: TensorFlow has no CPU kernel to learn it with
        interp = _tensors_kept(litert.write_model(model))
        x_tensor = graph.tensors[op.inputs[0]]
        x_scale, x_zero = x_tensor.quantization.scale[0], x_tensor.quantization.zeroPoint[0]
        float_inputs, quant_inputs = [], []
        for sample in samples:
            litert.set_input(float_interp, sample)
            float_interp.invoke()
            float_inputs.append(float_interp.get_tensor(float_index[input_name])[0])
            litert.set_input(interp, sample)
            interp.invoke()
            q = interp.get_tensor(op.inputs[0])[0].astype(np.float32)
            quant_inputs.append((q - x_zero) * x_scale)
        float_inputs, quant_inputs = np.stack(float_inputs), np.stack(quant_inputs)
        rounded = _learn_rounding(tf, kind, op, source, scale, axis, float_inputs, quant_inputs,
                                  iterations, rng)
        if not np.array_equal(rounded, values):
            model.buffers[filt.buffer].data = np.frombuffer(rounded.astype(np.int8).tobytes(),
                                                            np.uint8)
            changed += 1
    return litert.write_model(model), changed


def _learn_rounding(tf, kind, op, weights, scale, axis, float_inputs, quant_inputs, iterations,
                    rng) -> np.ndarray:
    """The int8 filter (the quantizer's scales) whose output best matches float's."""
    shape = [1] * weights.ndim
    shape[axis] = scale.size
    scale = scale.reshape(shape).astype(np.float32)
    weights = weights.astype(np.float32)
    scaled = weights / scale
    floor = np.floor(scaled)
    rest = np.clip(scaled - floor, 1e-4, 1 - 1e-4)
    # h(V) starts at the fractional part: the first step is rounding to nearest, softened.
    v = tf.Variable(-np.log((_ZETA - _GAMMA) / (rest - _GAMMA) - 1).astype(np.float32))
    floor_t, scale_t = tf.constant(floor, tf.float32), tf.constant(scale)

    def soft():
        return tf.clip_by_value(tf.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA, 0.0, 1.0)

    def layer(x, w):
        options = op.builtinOptions
        if kind == "FULLY_CONNECTED":
            return tf.matmul(tf.reshape(x, [x.shape[0], -1]), w, transpose_b=True)
        padding = "SAME" if options.padding == 0 else "VALID"
        strides = [1, options.strideH, options.strideW, 1]
        if kind == "CONV_2D":  # (out, h, w, in) -> (h, w, in, out)
            return tf.nn.conv2d(x, tf.transpose(w, [1, 2, 3, 0]), strides, padding)
        return tf.nn.depthwise_conv2d(x, tf.transpose(w, [1, 2, 3, 0]), strides, padding)

    targets = layer(tf.constant(float_inputs, tf.float32), tf.constant(weights, tf.float32))
    inputs = tf.constant(quant_inputs, tf.float32)
    power = float(tf.reduce_mean(tf.square(targets))) or 1.0
    optimizer = tf.keras.optimizers.Adam(1e-2)
    batch = min(8, len(quant_inputs))
    warmup = iterations // 5  # reconstruction alone first, then the regulariser, beta 20 -> 2
    weight = None  # the regulariser's weight: a tenth of the reconstruction error at warm-up
    for step in range(iterations):
        picks = rng.choice(len(quant_inputs), batch, replace=False)
        with tf.GradientTape() as tape:
            h = soft()
            w = scale_t * tf.clip_by_value(floor_t + h, -127.0, 127.0)
            # Relative error: layers of any scale weigh alike against the regulariser.
            loss = tf.reduce_mean(tf.square(layer(tf.gather(inputs, picks), w)
                                            - tf.gather(targets, picks))) / power
            if step >= warmup:
                weight = weight if weight is not None else 0.1 * float(loss)
                beta = 20 + (2 - 20) * (step - warmup) / max(iterations - warmup - 1, 1)
                loss += weight * tf.reduce_mean(1 - tf.pow(tf.abs(2 * h - 1), beta))
        optimizer.apply_gradients([(tape.gradient(loss, v), v)])
    return np.clip(floor + (soft().numpy() >= 0.5), -127, 127).astype(np.int8)

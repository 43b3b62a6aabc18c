"""Keras detector -> the .tflite Android's ML Kit, the TFLite Task Library and Coral's examples
read: an integer network, then TFLite_Detection_PostProcess with constant anchors and four
float32 outputs (boxes [1,M,4] ymin,xmin,ymax,xmax; classes [1,M]; scores [1,M];
num_detections [1]) in that order, the order those consumers read them by index.

The network is converted exactly as the classifier is (converters.pipeline: SavedModel,
calibrate_tflite, tighten_ranges, quantize, expand_hard_swish), its concatenations of more than
five inputs are split for XNNPACK (converters.rewrite.split_concatenations: SSDLite joins six
feature maps' predictions), and the op is then appended to the converted flatbuffer: a
DEQUANTIZE on each integer output, a constant anchors tensor, the CUSTOM op with its attributes
as a flexbuffer map, and the four outputs in the subgraph and the signature.

Why surgery and not TF's own route (a tf.function with experimental_implements, as the OD
API's TF2 export does, which the MLIR converter turns into the same op): measured with TF 2.21,
that route
- quantizes the op's outputs: calibration and the quantizer see the op inside the float model
  and put QUANTIZE ops after it, so boxes, classes and even num_detections come out int8 (a
  second XNNPACK partition too), not the float32 the consumers read;
- orders the subgraph's outputs as the SavedModel signature's sorted keys, not as the op
  writes them (scores, boxes, num_detections, classes in the OD API's own export), which
  index-reading consumers misread.
TF's route stays the independent check: `convert_with_tf_postprocess` builds the float model
that way, and the tests hold our op (attributes byte for byte, and outputs) equal to it.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from converters import litert, quantize, report, rewrite, tflite

OP_NAME = "TFLite_Detection_PostProcess"
NETWORK_OUTPUTS = ("box_encodings", "class_scores")
# The consumers read by position; the names are for people and the signature.
OUTPUT_NAMES = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")
MODES = ("float32", "float16", "dynamic", "int8")

# Fidelity: anchors and detections the float model is confident about (a best class score at
# or above this) are the ones compared; an image with none compares its TOP_K best anchors.
AGREEMENT_SCORE = 0.3
TOP_K = 10
BOX_IOU_AGREEMENT = 0.9  # a box "agrees" when its IoU with the float box reaches this
DETECTION_MATCH_IOU = 0.5  # a float detection is found when an int8 one of its class overlaps so

EXPECTED_OUTSIDE_DELEGATE = {
    OP_NAME: "expected: TFLite_Detection_PostProcess has no XNNPACK kernel and runs on LiteRT's "
             "CPU kernel (as on the GPU delegate and the Edge TPU); it decodes and sorts, after "
             "the network, so it does not split it",
}

UINT8_QUANTIZE_NOTE = (
    "expected with io_type uint8: the int8 network takes its uint8 input through a QUANTIZE "
    "(uint8 -> int8), which XNNPACK has no kernel for, so it runs on the CPU ahead of the "
    "partition (as do the int8 -> uint8 ones on raw outputs); use io_type int8 to drop it")


@dataclasses.dataclass(frozen=True)
class PostProcess:
    """The op's attributes (TF lite/kernels/detection_postprocess.cc).

    Defaults, and why:
    - max_detections 100: the OD API's SSDLite configs keep 100 in total, and COCO's AP counts
      up to 100 detections per image; the TF2 export's 10 would cap recall on crowded images.
      The consumers read M from the output shape, and the op's cost grows with M only in its
      greedy loop (M x candidates IoUs), far below the network's.
    - fast NMS (use_regular_nms False) on each anchor's best class, 1 class per detection:
      the kernel's defaults and the OD API exports' (TF1 and TF2).
    - nms_iou_threshold 0.6: the SSDLite configs' (the models were tuned with it).
    - nms_score_threshold 0.3, not the configs' 1e-8: at 1e-8 every anchor is a candidate and
      num_detections is always max_detections, the list filled with boxes scoring near 0 that
      a consumer looping to num_detections draws. Consumers filter again at their own display
      threshold, at or above this one (pycoral's examples/detect_image.py: --threshold 0.4 by
      default), so 0.3 removes nothing they show. COCO mAP does count low-score true
      positives: measure mAP comparable with published figures on `od_api(num_classes)`
      (1e-8). Greedy NMS suppresses only downward in score, so this artifact's detections are
      exactly those of the 1e-8 one that score >= 0.3 (tests/test_detection_convert.py).
    """

    num_classes: int
    max_detections: int = 100
    max_classes_per_detection: int = 1
    detections_per_class: int = 100
    use_regular_nms: bool = False
    nms_score_threshold: float = 0.3
    nms_iou_threshold: float = 0.6
    y_scale: float = 10.0
    x_scale: float = 10.0
    h_scale: float = 5.0
    w_scale: float = 5.0

    def __post_init__(self):
        for name in ("num_classes", "max_detections", "max_classes_per_detection",
                     "detections_per_class"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < self.nms_iou_threshold <= 1.0:
            raise ValueError(f"nms_iou_threshold must be in (0, 1], got {self.nms_iou_threshold}")
        if min(self.y_scale, self.x_scale, self.h_scale, self.w_scale) <= 0:
            raise ValueError("box coder scales must be positive")

    @classmethod
    def od_api(cls, num_classes: int) -> PostProcess:
        """The OD API SSDLite configs' post-processing (score 1e-8, IoU 0.6, 100 per class, 100
        in total): what published COCO mAP was measured with."""
        return cls(num_classes, nms_score_threshold=1e-8)

    def attributes(self) -> list[tuple[str, str, int | float | bool]]:
        """(name, kind, value), kind i/f/b as in a TF AttrValue, in the order TF's MLIR
        converter (nms_utils.cc) writes them. detections_per_class, which TF does not pass on,
        comes last and only when it differs from the kernel's default (100)."""
        attrs = [("max_detections", "i", int(self.max_detections)),
                 ("max_classes_per_detection", "i", int(self.max_classes_per_detection)),
                 ("num_classes", "i", int(self.num_classes)),
                 ("nms_score_threshold", "f", float(self.nms_score_threshold)),
                 ("nms_iou_threshold", "f", float(self.nms_iou_threshold)),
                 ("y_scale", "f", float(self.y_scale)), ("x_scale", "f", float(self.x_scale)),
                 ("h_scale", "f", float(self.h_scale)), ("w_scale", "f", float(self.w_scale)),
                 ("use_regular_nms", "b", bool(self.use_regular_nms))]
        if self.detections_per_class != 100:
            attrs.append(("detections_per_class", "i", int(self.detections_per_class)))
        return attrs

    def custom_options(self) -> bytes:
        """The flexbuffer map the kernel reads. Written as TF writes it: floats as float32 (the
        kernel reads float32; a float64 0.6 would round to the same value anyway) and
        use_regular_nms as an int, so the bytes equal TF's for the same attributes."""
        from flatbuffers import flexbuffers

        fbb = flexbuffers.Builder()
        with fbb.Map():
            for name, kind, value in self.attributes():
                fbb.Key(name)
                if kind == "f":
                    fbb.Float(float(np.float32(value)), byte_width=4)
                else:
                    fbb.Int(int(value))
        return bytes(fbb.Finish())

    def implements(self) -> str:
        """The experimental_implements signature TF's converter turns into this op."""
        parts = [f'name: "{OP_NAME}"']
        for name, kind, value in self.attributes():
            text = ("true" if value else "false") if kind == "b" else repr(value)
            parts.append(f'attr {{ key: "{name}" value {{ {kind}: {text} }} }}')
        if self.detections_per_class == 100:  # the TF2 export names it; TF drops it
            parts.append('attr { key: "detections_per_class" value { i: 100 } }')
        return " ".join(parts)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


class Detections(NamedTuple):
    """One image's detections, the op's zero padding cut off: boxes [n,4] (ymin, xmin, ymax,
    xmax, normalized), classes [n] (0-based ids), scores [n], count n."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    count: int


@dataclasses.dataclass
class DetectionResult:
    """The converted detector and what its report says about the conversion."""

    content: bytes
    network: bytes  # the network alone, with its two raw outputs (content itself for raw outputs)
    mode: str
    io_type: str | None
    postprocess: dict | None
    seconds: float
    graph: dict
    quantization: dict | None
    execution: dict
    fidelity: dict
    notes: list[str]
    warnings: list[str]

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("content", "network")}


# ---------------------------------------------------------------------------------------------
# Decoding and NMS in numpy: the op's arithmetic, written again to check it and to compare
# boxes before NMS.


def decode(encodings: np.ndarray, anchors: np.ndarray, postprocess: PostProcess | None = None
           ) -> np.ndarray:
    """[..., N, 4] (ty, tx, th, tw) -> [..., N, 4] (ymin, xmin, ymax, xmax), float32 as the
    kernel computes them."""
    pp = postprocess or PostProcess(1)
    enc = np.asarray(encodings, np.float32)
    ya, xa, ha, wa = (np.asarray(anchors, np.float32)[:, i] for i in range(4))
    yc = enc[..., 0] / np.float32(pp.y_scale) * ha + ya
    xc = enc[..., 1] / np.float32(pp.x_scale) * wa + xa
    half_h = np.float32(0.5) * np.exp(enc[..., 2] / np.float32(pp.h_scale)) * ha
    half_w = np.float32(0.5) * np.exp(enc[..., 3] / np.float32(pp.w_scale)) * wa
    return np.stack([yc - half_h, xc - half_w, yc + half_h, xc + half_w], axis=-1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [..., 4] and b [..., 4] (broadcast); 0 where either has no area, as in
    the kernel."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ay0, ax0 = np.minimum(a[..., 0], a[..., 2]), np.minimum(a[..., 1], a[..., 3])
    ay1, ax1 = np.maximum(a[..., 0], a[..., 2]), np.maximum(a[..., 1], a[..., 3])
    by0, bx0 = np.minimum(b[..., 0], b[..., 2]), np.minimum(b[..., 1], b[..., 3])
    by1, bx1 = np.maximum(b[..., 0], b[..., 2]), np.maximum(b[..., 1], b[..., 3])
    area_a, area_b = (ay1 - ay0) * (ax1 - ax0), (by1 - by0) * (bx1 - bx0)
    inter = (np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
             * np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None))
    union = area_a + area_b - inter
    valid = (area_a > 0) & (area_b > 0)
    return np.where(valid, inter / np.where(valid, union, 1.0), 0.0)


def reference_detections(encodings: np.ndarray, scores: np.ndarray, anchors: np.ndarray,
                         postprocess: PostProcess) -> Detections:
    """One image's detections by fast NMS, in numpy (no TFLite): encodings [N,4], scores
    [N,C+1] or [N,C]. Each anchor's best class is its candidate; candidates at or above the
    score threshold are taken in decreasing score and each one removes later candidates that
    overlap it by more than the IoU threshold, until max_detections are taken."""
    pp = postprocess
    if pp.use_regular_nms or pp.max_classes_per_detection != 1:
        raise NotImplementedError("the numpy reference does fast NMS with one class per box")
    scores = np.asarray(scores, np.float32)
    class_scores = scores[:, scores.shape[1] - pp.num_classes:]
    best_class = np.argmax(class_scores, axis=1)
    best = class_scores[np.arange(len(class_scores)), best_class]
    boxes = decode(encodings, anchors, pp)
    candidates = np.flatnonzero(best >= np.float32(pp.nms_score_threshold))
    candidates = candidates[np.argsort(-best[candidates], kind="stable")]
    active = np.ones(len(candidates), bool)
    selected = []
    for i, anchor in enumerate(candidates):
        if len(selected) >= pp.max_detections:
            break
        if not active[i]:
            continue
        selected.append(anchor)
        later = candidates[i + 1:]
        active[i + 1:] &= iou(boxes[anchor], boxes[later]) <= pp.nms_iou_threshold
    selected = np.asarray(selected, int)
    return Detections(boxes[selected], best_class[selected].astype(np.int32), best[selected],
                      len(selected))


# ---------------------------------------------------------------------------------------------
# The op in the flatbuffer.


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _opcode(model, builtin: int, version: int, custom: str | None = None) -> int:
    """Index of the operator code (a builtin, or the custom op `custom`), added when absent;
    an existing code's version is raised to `version` when lower."""
    schema = _schema()
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) != builtin:
            continue
        if custom is None or (code.customCode or b"").decode() == custom:
            code.version = max(code.version, version)
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = version
    if custom is not None:
        code.customCode = custom
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _add_tensor(model, graph, name: str, shape, tensor_type: int,
                data: np.ndarray | None = None) -> int:
    schema = _schema()
    buffer = schema.BufferT()
    if data is not None:
        buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.name = name.encode()
    tensor.shape = np.array(shape, np.int32)
    tensor.type = tensor_type
    tensor.buffer = len(model.buffers) - 1
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _add_op(model, graph, opcode: int, inputs, outputs):
    op = _schema().OperatorT()
    op.opcodeIndex = opcode
    op.inputs = np.array(inputs, np.int32)
    op.outputs = np.array(outputs, np.int32)
    graph.operators.append(op)
    return op


def _signature_outputs(model) -> dict[str, int]:
    """Signature key -> tensor index of the first signature's outputs."""
    if not model.signatureDefs:
        return {}
    return {m.name.decode(): int(m.tensorIndex) for m in model.signatureDefs[0].outputs or []}


def _set_outputs(model, graph, named: Sequence[tuple[str, int]]) -> None:
    schema = _schema()
    graph.outputs = np.array([index for _, index in named], np.int32)
    if model.signatureDefs:
        maps = []
        for name, index in named:
            tensor_map = schema.TensorMapT()
            tensor_map.name, tensor_map.tensorIndex = name, index
            maps.append(tensor_map)
        model.signatureDefs[0].outputs = maps


def _append_postprocess(model, graph, box: int, scores: int, anchors: np.ndarray,
                        pp: PostProcess) -> dict:
    """Appends DEQUANTIZE (for integer inputs), the anchors and the op to `graph`, makes the op's
    four outputs the graph's; returns what was added.

    Integer outputs are dequantized even where the op could read them itself (it takes uint8):
    ai-edge-litert 2.3's kernel fed uint8 box encodings and scores (io_type uint8, the Edge TPU
    profile) returned 15 detections per image where the same values dequantized gave 4, as
    the numpy reference does; so the two DEQUANTIZEs stay on the CPU with the op."""
    schema = _schema()
    anchors = np.asarray(anchors, np.float32)
    box_shape, score_shape = list(graph.tensors[box].shape), list(graph.tensors[scores].shape)
    n = anchors.shape[0]
    if anchors.ndim != 2 or anchors.shape[1] != 4:
        raise ValueError(f"anchors must be [N, 4] (yc, xc, h, w), got {list(anchors.shape)}")
    if box_shape != [1, n, 4]:
        raise ValueError(f"box encodings must be [1, {n}, 4] for {n} anchors, got {box_shape}")
    if len(score_shape) != 3 or score_shape[:2] != [1, n] or \
            score_shape[2] - pp.num_classes not in (0, 1):
        raise ValueError(f"class scores must be [1, {n}, {pp.num_classes + 1}] (background "
                         f"first) or [1, {n}, {pp.num_classes}], got {score_shape}")
    dequantized, inputs, bypassed = [], [], 0
    names = [litert.op_name(code) for code in model.operatorCodes]
    for index in (box, scores):
        tensor = graph.tensors[index]
        requantize = _uint8_requantize(graph, names, index)
        if requantize is not None:  # dequantize the int8 tensor, not XNNPACK-less int8->uint8
            graph.operators.remove(requantize)
            index, tensor = int(requantize.inputs[0]), graph.tensors[int(requantize.inputs[0])]
            bypassed += 1
        if tensor.type == schema.TensorType.FLOAT32:
            inputs.append(index)
            continue
        if tensor.type not in (schema.TensorType.INT8, schema.TensorType.UINT8):
            raise ValueError(f"cannot feed a {litert.enum_names('TensorType')[tensor.type]} "
                             f"output ({tensor.name.decode()}) to {OP_NAME}")
        version = 2 if tensor.type == schema.TensorType.INT8 else 1  # TFLite's op versioning
        stem = tensor.name.decode(errors="replace").split(";")[0]
        out = _add_tensor(model, graph, f"{stem}/dequantized", list(tensor.shape),
                          schema.TensorType.FLOAT32)
        _add_op(model, graph, _opcode(model, schema.BuiltinOperator.DEQUANTIZE, version),
                [index], [out])
        inputs.append(out)
        dequantized.append(stem)
    anchor_tensor = _add_tensor(model, graph, "anchors", [n, 4], schema.TensorType.FLOAT32,
                                anchors.astype("<f4"))
    m = pp.max_detections
    outputs = [_add_tensor(model, graph, name, shape, schema.TensorType.FLOAT32)
               for name, shape in zip(OUTPUT_NAMES, ([1, m, 4], [1, m], [1, m], [1]), strict=True)]
    op = _add_op(model, graph, _opcode(model, schema.BuiltinOperator.CUSTOM, 1, custom=OP_NAME),
                 [*inputs, anchor_tensor], outputs)
    op.customOptions = np.frombuffer(pp.custom_options(), np.uint8)
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    _set_outputs(model, graph, list(zip(OUTPUT_NAMES, outputs, strict=True)))
    return {"dequantized_outputs": dequantized, "anchors": n, "uint8_requantizes_removed": bypassed}


def _uint8_requantize(graph, names: list[str], index: int):
    """The QUANTIZE int8 -> uint8 that a uint8 io_type puts on a network output, when nothing
    else reads that output: the op only needs floats, and XNNPACK has no kernel for it."""
    schema = _schema()
    if graph.tensors[index].type != schema.TensorType.UINT8:
        return None
    producers = [op for op in graph.operators if index in op.outputs]
    readers = [op for op in graph.operators if index in op.inputs]
    if len(producers) != 1 or readers or names[producers[0].opcodeIndex] != "QUANTIZE":
        return None
    source = graph.tensors[int(producers[0].inputs[0])]
    return producers[0] if source.type == schema.TensorType.INT8 else None


def network_outputs(content: bytes) -> tuple[int, int]:
    """Tensor indices of the converted network's box encodings and class scores, found by
    their signature keys."""
    model = litert.read_model(content)
    keys = _signature_outputs(model)
    missing = [name for name in NETWORK_OUTPUTS if name not in keys]
    if missing:
        raise ValueError(f"the converted network has no output {missing[0]!r} "
                         f"(its outputs: {sorted(keys)})")
    return keys[NETWORK_OUTPUTS[0]], keys[NETWORK_OUTPUTS[1]]


def append_postprocess(network: bytes, anchors: np.ndarray, postprocess: PostProcess) -> bytes:
    """The converted network (outputs box_encodings and class_scores, float or integer) with
    TFLite_Detection_PostProcess appended as its only consumer; its four float32 outputs become
    the model's, in the op's order."""
    box, scores = network_outputs(network)
    model = litert.read_model(network)
    _append_postprocess(model, model.subgraphs[0], box, scores, anchors, postprocess)
    return litert.write_model(model)


def order_network_outputs(network: bytes) -> bytes:
    """The raw network with its outputs in the order box_encodings, class_scores (the
    converter orders them by its own rules); unchanged bytes when they already are."""
    model = litert.read_model(network)
    graph = model.subgraphs[0]
    box, scores = network_outputs(network)
    if list(graph.outputs) == [box, scores]:
        return network
    _set_outputs(model, graph, list(zip(NETWORK_OUTPUTS, (box, scores), strict=True)))
    return litert.write_model(model)


def postprocess_model(anchors: np.ndarray, postprocess: PostProcess, columns: int | None = None
                      ) -> bytes:
    """A .tflite holding the op alone, inputs box_encodings [1,N,4] and class_scores
    [1,N,columns] (float32): the op applied to any model's outputs, the float Keras model's
    included, so that float and int8 detections come from the same kernel."""
    schema = _schema()
    anchors = np.asarray(anchors, np.float32)
    columns = postprocess.num_classes + 1 if columns is None else columns
    model = schema.ModelT()
    model.version = 3
    model.description = f"tfmobile: {OP_NAME} alone".encode()
    model.buffers = [schema.BufferT()]  # buffer 0: the empty sentinel
    model.operatorCodes = []
    graph = schema.SubGraphT()
    graph.name, graph.tensors, graph.operators = b"main", [], []
    n = anchors.shape[0]
    box = _add_tensor(model, graph, NETWORK_OUTPUTS[0], [1, n, 4], schema.TensorType.FLOAT32)
    scores = _add_tensor(model, graph, NETWORK_OUTPUTS[1], [1, n, columns],
                         schema.TensorType.FLOAT32)
    graph.inputs = np.array([box, scores], np.int32)
    model.subgraphs = [graph]
    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = []
    for name, index in zip(NETWORK_OUTPUTS, (box, scores), strict=True):
        tensor_map = schema.TensorMapT()
        tensor_map.name, tensor_map.tensorIndex = name, index
        signature.inputs.append(tensor_map)
    signature.outputs = []
    model.signatureDefs = [signature]
    _append_postprocess(model, graph, box, scores, anchors, postprocess)
    return litert.write_model(model)


def run_postprocess(op_model: bytes | object, box_encodings: np.ndarray,
                    class_scores: np.ndarray) -> list[Detections]:
    """postprocess_model()'s op (bytes, or an interpreter of them) on each sample of
    box_encodings [K,N,4] and class_scores [K,N,columns]."""
    interpreter = litert.load(op_model) if isinstance(op_model, (bytes, bytearray)) else op_model
    box_in, score_in = (d["index"] for d in interpreter.get_input_details())
    found = []
    for box, scores in zip(box_encodings, class_scores, strict=True):
        interpreter.set_tensor(box_in, np.asarray(box, np.float32)[None])
        interpreter.set_tensor(score_in, np.asarray(scores, np.float32)[None])
        interpreter.invoke()
        found.append(read_detections(
            [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]))
    return found


def read_detections(outputs: Sequence[np.ndarray]) -> Detections:
    """The four outputs of a batch-1 detector, in the order the interpreter lists them (boxes,
    classes, scores, num_detections: what the consumers read by position), checked and cut to
    num_detections. Raises ValueError when they are not that."""
    if len(outputs) != 4:
        raise ValueError(f"a detector has 4 outputs (boxes, classes, scores, num_detections), "
                         f"this one has {len(outputs)}")
    boxes, classes, scores, num = (np.asarray(o) for o in outputs)
    if boxes.ndim != 3 or boxes.shape[0] != 1 or boxes.shape[2] != 4:
        raise ValueError(f"output 0 must be boxes [1, M, 4], got {list(boxes.shape)}")
    m = boxes.shape[1]
    for position, (what, array) in enumerate((("classes", classes), ("scores", scores)), 1):
        if array.shape != (1, m):
            raise ValueError(f"output {position} must be {what} [1, {m}], got {list(array.shape)}")
    if num.shape != (1,):
        raise ValueError(f"output 3 must be num_detections [1], got {list(num.shape)}")
    for position, array in enumerate((boxes, classes, scores, num)):
        if array.dtype != np.float32:
            raise ValueError(f"output {position} must be float32, got {array.dtype}")
    count = int(round(float(num[0])))
    if not 0 <= count <= m:
        raise ValueError(f"num_detections {num[0]} is outside [0, {m}]")
    return Detections(boxes[0, :count], np.rint(classes[0, :count]).astype(np.int32),
                      scores[0, :count], count)


def run_detector(content: bytes | object, images: np.ndarray) -> list[Detections]:
    """The detector (bytes, or an interpreter of them) on each preprocessed image: one
    Detections (boxes, classes, scores, count) per image. The input is quantized with its
    scale where it is an integer."""
    interpreter = litert.load(content) if isinstance(content, (bytes, bytearray)) else content
    details = interpreter.get_output_details()
    if len(details) != 4:
        raise ValueError(f"a detector has 4 outputs (boxes, classes, scores, num_detections), "
                         f"this model has {len(details)}: was it converted with raw outputs?")
    found = []
    for image in images:
        litert.set_input(interpreter, image)
        interpreter.invoke()
        found.append(read_detections([interpreter.get_tensor(d["index"]) for d in details]))
    return found


# ---------------------------------------------------------------------------------------------
# TF's own route, the independent check of the op's attributes.


def convert_with_tf_postprocess(model, anchors: np.ndarray, postprocess: PostProcess) -> bytes:
    """The float32 detector as TF itself makes it: the OD API TF2 export's trick, a
    tf.function whose experimental_implements names the op, over the model's outputs and
    constant anchors, converted with custom ops allowed (TF's MLIR nms_utils writes the op).
    Its subgraph outputs come in the signature's order, not the op's: read them through the
    op (`tf_route_outputs`)."""
    import keras
    import tensorflow as tf

    anchors_const = tf.constant(np.asarray(anchors, np.float32))

    @tf.function(experimental_implements=postprocess.implements())
    def detection_postprocess(box_encodings, class_predictions, anchors):
        del box_encodings, class_predictions, anchors  # the converter replaces the body
        return (tf.constant(0.0, name="boxes"), tf.constant(0.0, name="classes"),
                tf.constant(0.0, name="scores"), tf.constant(0.0, name="num_detections"))

    def serve(image):
        outputs = named_outputs(model, model(image, training=False))
        return detection_postprocess(outputs["box_encodings"], outputs["class_scores"],
                                     anchors_const)

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name="image")
    with tempfile.TemporaryDirectory(prefix="tfmobile-savedmodel-") as saved:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", serve, input_signature=[spec])
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.allow_custom_ops = True
        return converter.convert()


def postprocess_op(content: bytes) -> tuple[list[int], list[int], bytes]:
    """(input tensor indices, output tensor indices, custom options) of the model's op."""
    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]
    ops = [op for op in graph.operators if names[op.opcodeIndex] == OP_NAME]
    if len(ops) != 1:
        raise ValueError(f"the model holds {len(ops)} {OP_NAME} ops, not 1")
    (op,) = ops
    return ([int(i) for i in op.inputs], [int(i) for i in op.outputs],
            bytes(np.asarray(op.customOptions, np.uint8)))


def tf_route_outputs(content: bytes, images: np.ndarray) -> list[Detections]:
    """run_detector for a model whose subgraph outputs are not in the op's order (TF's route):
    the op's own output tensors are read, in the op's order."""
    _, outputs, _ = postprocess_op(content)
    interpreter = litert.load(content)
    found = []
    for image in images:
        litert.set_input(interpreter, image)
        interpreter.invoke()
        found.append(read_detections([interpreter.get_tensor(i) for i in outputs]))
    return found


# ---------------------------------------------------------------------------------------------
# Conversion.


def named_outputs(model, outputs) -> dict:
    """A detector's outputs by name, whether the model returns a dict or a list (then its
    output_names name them)."""
    if isinstance(outputs, dict):
        found = dict(outputs)
    else:
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        found = dict(zip(model.output_names, outputs, strict=True))
    missing = [name for name in NETWORK_OUTPUTS if name not in found]
    if missing:
        raise ValueError(f"the detector has no output {missing[0]!r} (its outputs: "
                         f"{sorted(found)}); it must give box_encodings [1,N,4] and "
                         "class_scores [1,N,C+1]")
    return found


def _export_keys(model) -> dict[str, str]:
    """Network output name -> its key in the SavedModel signature tflite.export_saved_model
    writes: a dict output keeps its keys, a list one becomes output_0, output_1, ..."""
    import tensorflow as tf

    probe = model(tf.zeros((1, *model.input_shape[1:]), tf.float32), training=False)
    named_outputs(model, probe)  # the check, with its message
    if isinstance(probe, dict):
        return {name: name for name in NETWORK_OUTPUTS}
    order = list(model.output_names)
    return {name: f"output_{order.index(name)}" for name in NETWORK_OUTPUTS}


def _rename_network_outputs(content: bytes, keys: dict[str, str]) -> bytes:
    """The converted network with its signature outputs named box_encodings and
    class_scores (a list-output model's are output_0, output_1)."""
    if all(name == key for name, key in keys.items()):
        return content
    model = litert.read_model(content)
    wanted = {key: name for name, key in keys.items()}
    for tensor_map in model.signatureDefs[0].outputs:
        tensor_map.name = wanted.get(tensor_map.name.decode(), tensor_map.name.decode())
    return litert.write_model(model)


def _keras_outputs(model, images: np.ndarray) -> dict[str, np.ndarray]:
    predicted = model.predict(images, verbose=0, batch_size=1)
    found = named_outputs(model, predicted)
    return {name: np.asarray(found[name], np.float32) for name in NETWORK_OUTPUTS}


def _network_check(content: bytes) -> dict:
    """Whether every op between the input and the op's DEQUANTIZEs is integer: the ops that
    produce a float tensor, less the post-processing op and the DEQUANTIZEs feeding it (or
    giving the model's outputs, in a float32-io network without the op)."""
    model = litert.read_model(content)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]
    feeding = {int(i) for i in graph.outputs}  # raw outputs, dequantized for a float32 io_type
    for op in graph.operators:
        if names[op.opcodeIndex] == OP_NAME:
            feeding |= {int(i) for i in op.inputs}
    float_type = _schema().TensorType.FLOAT32
    in_float = []
    for op in graph.operators:
        name = names[op.opcodeIndex]
        outputs = [int(i) for i in op.outputs]
        if name == OP_NAME or (name == "DEQUANTIZE" and set(outputs) <= feeding):
            continue
        if any(graph.tensors[i].type == float_type for i in outputs):
            in_float.append({"op": name, "output": graph.tensors[outputs[0]].name.decode()})
    return {"network_integer": not in_float, "network_float_ops": in_float}


def _tensor_json(detail: dict) -> dict:
    info = report.tensor_info(detail)
    return {"name": info.name, "shape": list(info.shape), "dtype": info.dtype,
            "scale": info.scale, "zero_point": info.zero_point}


def _output_quantization(network: bytes) -> dict:
    """Each network output's int8 grid: box encodings and sigmoid scores span very different
    ranges, and a shared scale would leave the scores a handful of levels."""
    model = litert.read_model(network)
    graph = model.subgraphs[0]
    names = [litert.op_name(code) for code in model.operatorCodes]
    dequantized_from = {int(op.outputs[0]): int(op.inputs[0]) for op in graph.operators
                        if names[op.opcodeIndex] == "DEQUANTIZE"}
    keys = _signature_outputs(model)
    out = {}
    for name in NETWORK_OUTPUTS:  # a float32 io_type's output: the int8 tensor it dequantizes
        tensor = graph.tensors[dequantized_from.get(keys[name], keys[name])]
        quant = tensor.quantization
        scale = quant.scale if quant is not None and quant.scale is not None else []
        zero = quant.zeroPoint if quant is not None and quant.zeroPoint is not None else []
        out[name] = {"dtype": litert.enum_names("TensorType")[tensor.type],
                     "scale": float(scale[0]) if len(scale) else None,
                     "zero_point": int(zero[0]) if len(zero) else None}
    return out


def _sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    """Signal power over error power in dB (fidelity.compare's), None when identical."""
    reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    error = float(np.sum((reference - candidate) ** 2))
    return None if error == 0 else float(10 * np.log10(np.sum(reference**2) / error))


def box_agreement(reference: dict, candidate: dict, anchors: np.ndarray, num_classes: int,
                  threshold: float = AGREEMENT_SCORE, pp: PostProcess | None = None) -> dict:
    """Decoded boxes of both models on the anchors the float model is confident about (best
    class score >= threshold; an image with none gives its TOP_K best anchors): mean IoU
    between float and converted boxes, and the share with IoU >= BOX_IOU_AGREEMENT."""
    scores = reference["class_scores"]
    best = scores[..., scores.shape[-1] - num_classes:].max(axis=-1)  # [K, N]
    ref_boxes = decode(reference["box_encodings"], anchors, pp)
    cand_boxes = decode(candidate["box_encodings"], anchors, pp)
    overlaps, fallbacks = [], 0
    for i in range(len(best)):
        chosen = np.flatnonzero(best[i] >= threshold)
        if not len(chosen):
            chosen = np.argsort(-best[i], kind="stable")[:TOP_K]
            fallbacks += 1
        overlaps.append(iou(ref_boxes[i, chosen], cand_boxes[i, chosen]))
    overlaps = np.concatenate(overlaps)
    return {"boxes_compared": int(len(overlaps)),
            "selection": f"anchors whose float best class score is >= {threshold}; the top "
                         f"{TOP_K} by float score in an image with none",
            "images_with_top_k_fallback": fallbacks,
            "box_iou_mean": float(np.mean(overlaps)),
            f"box_iou_agreement_{BOX_IOU_AGREEMENT}": float(np.mean(overlaps >= BOX_IOU_AGREEMENT))}


def detection_agreement(reference: list[Detections], candidate: list[Detections],
                        threshold: float = AGREEMENT_SCORE) -> dict:
    """Share of the float detections scoring >= threshold that a converted detection of the
    same class overlaps with IoU >= DETECTION_MATCH_IOU (one to one, highest float score
    first)."""
    wanted = found = converted = 0
    for ref, cand in zip(reference, candidate, strict=True):
        converted += int(np.sum(cand.scores >= threshold))
        used = np.zeros(cand.count, bool)
        for k in np.argsort(-ref.scores, kind="stable"):
            if ref.scores[k] < threshold:
                continue
            wanted += 1
            overlaps = iou(ref.boxes[k], cand.boxes) if cand.count else np.zeros(0)
            overlaps = np.where((cand.classes == ref.classes[k]) & ~used, overlaps, -1.0)
            if len(overlaps) and overlaps.max() >= DETECTION_MATCH_IOU:
                used[int(np.argmax(overlaps))] = True
                found += 1
    return {"float_detections": wanted, "converted_detections": converted,
            "threshold": threshold, "match_iou": DETECTION_MATCH_IOU,
            "detection_agreement": found / wanted if wanted else None}


def _fidelity(model, network: bytes, content: bytes, anchors: np.ndarray, evaluation,
              pp: PostProcess | None) -> dict:
    reference = _keras_outputs(model, evaluation)
    converted = litert.run_outputs(litert.load(network), evaluation)
    for what, outputs in (("the Keras model", reference), ("the converted model", converted)):
        if not all(np.isfinite(v).all() for v in outputs.values()):
            raise ValueError(f"{what} gives NaN or infinite outputs on the evaluation images")
    columns = reference["class_scores"].shape[-1]
    num_classes = pp.num_classes if pp is not None else columns - 1  # background in column 0
    first = columns - num_classes
    threshold = max(AGREEMENT_SCORE, pp.nms_score_threshold) if pp is not None else AGREEMENT_SCORE
    found = {"samples": int(len(evaluation)),
             "score_sqnr_db": _sqnr_db(reference["class_scores"][..., first:],
                                       converted["class_scores"][..., first:]),
             "score_sqnr_columns": f"the {num_classes} class columns (the op skips background)",
             "score_max_abs_error": float(np.max(np.abs(reference["class_scores"]
                                                        - converted["class_scores"]))),
             "box_encoding_sqnr_db": _sqnr_db(reference["box_encodings"],
                                              converted["box_encodings"]),
             **box_agreement(reference, converted, anchors, num_classes, threshold, pp)}
    if pp is not None:
        float_detections = run_postprocess(
            postprocess_model(anchors, pp, columns), reference["box_encodings"],
            reference["class_scores"])
        found.update(detection_agreement(float_detections, run_detector(content, evaluation),
                                         threshold))
    return found


def _execution(content: bytes, io_type: str | None, tail: dict | None = None
               ) -> tuple[dict, list[str], list[str]]:
    """Partitions and the ops outside XNNPACK, each expected one with its reason. `tail` is a
    family's decoding ops after the network that XNNPACK has no kernel for (op -> why); the
    ops after them form one more small partition."""
    facts = report.execution(litert.load(content))
    outside = dict(facts.ops_outside_delegate)
    known = {**EXPECTED_OUTSIDE_DELEGATE, **(tail or {})}
    if io_type == "uint8":
        known["QUANTIZE"] = UINT8_QUANTIZE_NOTE
    expected = {op: known[op] for op in outside if op in known}
    unexpected = {op: n for op, n in outside.items() if op not in known}
    notes = list(dict.fromkeys(expected.values()))
    warnings = []
    if facts.partitions != 1 + (1 if tail and set(tail) & set(outside) else 0):
        warnings.append(f"the network runs as {facts.partitions} XNNPACK partitions, not 1: "
                        "each split goes through LiteRT's slower reference kernels")
    if unexpected:
        warnings.append("ops outside XNNPACK besides the post-processing: "
                        + ", ".join(f"{op} x{n}" for op, n in unexpected.items()))
    return ({"delegate": facts.delegate, "partitions": facts.partitions,
             "ops_outside_delegate": outside, "expected_outside": expected,
             "unexpected_outside": unexpected}, notes, warnings)


def convert_detector(model, anchors: np.ndarray, calibration: np.ndarray, evaluation: np.ndarray,
                     *, mode: str = "int8", io_type: str = "int8",
                     postprocess: PostProcess | None = None, expand_hard_swish: bool = True,
                     float_depthwise: bool = True, tail: dict | None = None,
                     float_tail: bool = False, progress=None,
                     verbose: bool = False) -> DetectionResult:
    """`model`: the deploy Keras detector, input [1,S,S,3] in [-1, 1], outputs box_encodings
    [1,N,4] and class_scores [1,N,C+1] (sigmoid, background column 0); `anchors` [N,4];
    `calibration` and `evaluation` float32 [K,S,S,3] batches (the fidelity is measured on the
    evaluation one against the Keras model). `postprocess` None keeps the two raw outputs
    (--raw_outputs). `progress(iterable, total, desc)` wraps the calibration loop. TensorFlow's
    converter logging is hidden unless `verbose`.

    Rewrites keep the network one XNNPACK partition, as in the classifier converter:
    `expand_hard_swish` (int8 only; the classifier's --expand_hard_swish) writes each int8
    HARD_SWISH, which XNNPACK has no kernel for, as ADD/MUL; `float_depthwise` (dynamic only;
    --float_depthwise) stores depthwise filters in float32, as XNNPACK takes no int8-weight
    DEPTHWISE_CONV_2D; and every mode's concatenations of more than five inputs (an SSD head
    joins one tensor per feature map, six in SSDLite) are split into nested ones of at most
    five, XNNPACK's limit. Each is counted in the report (quantization and graph sections).
    `float_tail` (int8) keeps the `tail` ops in float: the Edge TPU profile, as compiler 16.0
    refuses a whole model holding an int8 LOG (version 2, converters/edgetpu_versions.py)."""
    from tfmobile_core import cli

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "int8" and io_type not in quantize.IO_TYPES:
        raise ValueError(f"io_type must be one of {', '.join(quantize.IO_TYPES)}, got {io_type!r}")
    anchors = np.asarray(anchors, np.float32)
    started = time.perf_counter()
    quantization = None
    with cli.native_output_silenced(not verbose):
        keys = _export_keys(model)
        with tempfile.TemporaryDirectory(prefix="tfmobile-savedmodel-") as saved_model:
            tflite.export_saved_model(model, saved_model)
            if mode == "int8":
                wrap = progress or (lambda it, total, desc: it)
                float_content = tflite.convert_saved_model(saved_model, "float32")
                calibrated = quantize.calibrate_tflite(
                    float_content, lambda: wrap(iter(calibration), len(calibration), "calibrating"))
                calibrated, tightened = quantize.tighten_ranges(calibrated)
                network = quantize.quantize(
                    calibrated, io_type=io_type,
                    denylisted_ops=sorted(tail or {}) if float_tail else None)
                hard_swish_expanded = 0
                if expand_hard_swish:
                    network, hard_swish_expanded = rewrite.expand_hard_swish(network)
            else:
                network = tflite.convert_saved_model(saved_model, mode)
        depthwise_in_float = 0
        if mode == "dynamic" and float_depthwise:
            network, depthwise_in_float = rewrite.float_depthwise_weights(network)
        network, concatenations_split = rewrite.split_concatenations(network)
        network = order_network_outputs(_rename_network_outputs(network, keys))
        content = network if postprocess is None else \
            append_postprocess(network, anchors, postprocess)
        seconds = time.perf_counter() - started

        interpreter = litert.load(content)
        graph = {"file_bytes": len(content), "ops": dict(litert.op_counts(content).most_common()),
                 "tensor_types": report.tensor_type_counts(content),
                 "input": _tensor_json(interpreter.get_input_details()[0]),
                 "outputs": [{**_tensor_json(d), "key": key} for d, key in zip(
                     interpreter.get_output_details(),
                     [litert.output_names(interpreter)[d["index"]]
                      for d in interpreter.get_output_details()], strict=True)],
                 "concatenations_split": concatenations_split,
                 "depthwise_filters_in_float32": depthwise_in_float,
                 **_network_check(content)}
        graph["input_integer"] = graph["input"]["dtype"] in ("int8", "uint8")
        graph["fully_integer"] = graph["network_integer"] and graph["input_integer"]
        execution, notes, warnings = _execution(content, io_type if mode == "int8" else None,
                                                tail)
        if mode == "int8":
            scales = _output_quantization(network)
            quantization = {"steps": "SavedModel -> float .tflite -> calibrate_tflite -> "
                                     "tighten_ranges -> quantize"
                                     + (" -> expand_hard_swish" if expand_hard_swish else "")
                                     + " (as the classifier converter)",
                            "io_type": io_type, "calibration_samples": int(len(calibration)),
                            "ranges_tightened_to_reader_domain": tightened,
                            "hard_swish_expanded_to_add_mul": hard_swish_expanded,
                            "network_outputs": scales}
            found = [s["scale"] for s in scales.values()]
            if len(set(found)) < len(found):
                warnings.append("box encodings and class scores share one int8 scale")
            left = [op["op"] for op in graph["network_float_ops"]]
            meant = set(tail or {}) | {"DEQUANTIZE"} if float_tail else set()
            if set(left) - meant:
                warnings.append("ops left in float inside the network: " + ", ".join(left))
            elif left:
                quantization["float_tail"] = sorted(set(left))
                notes.append(f"expected: {', '.join(dict.fromkeys(left))} in float for the Edge "
                             "TPU profile: compiler 16.0 refuses a whole model holding an int8 "
                             "LOG (version 2); the Edge TPU part ends at the DEQUANTIZE before "
                             "them")
        fidelity = _fidelity(model, network, content, anchors, evaluation, postprocess)
    return DetectionResult(
        content=content, network=network, mode=mode,
        io_type=io_type if mode == "int8" else None,
        postprocess=postprocess.to_json() if postprocess is not None else None,
        seconds=round(seconds, 2), graph=graph, quantization=quantization,
        execution=execution, fidelity=fidelity, notes=notes, warnings=warnings)

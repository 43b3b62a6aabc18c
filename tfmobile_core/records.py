"""The records the pipeline's stages hand each other, typed, versioned, and free of TensorFlow.

    model -> converter -> artifact + report -> device -> results -> comparison

- `ModelIdentity`: which network, built how (name, alpha, input size, classes, variants,
  weights). The zoo's registry makes it (`tfmobile.models.identity`).
- `Conversion`: how the converter turned it into a `.tflite` (mode, io type, the options that
  change the graph). `ArtifactId` is the pair, and the one place artifact names come from
  (`ArtifactId.stem`); the converter also embeds it in the `.tflite` itself.
- `ConversionReport`: the model card written beside each `.tflite` (`<stem>.json`).
- `ModelFile`, `BenchConfig`, `RunInfo`, `Metrics`, `BenchmarkRecord`: one benchmark cell,
  as the results store keeps it (one JSON line each).

Names, flags and table joins are derived from these records; nothing reads an identity back
out of a file name. Every record reads back with `from_json`, which checks types and values
and raises `RecordError` naming the field, so a damaged file is one clear line, never a
traceback or a silently wrong table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from typing import Any
from collections.abc import Mapping

SCHEMA_VERSION = 2
# Version 1: the untyped reports and results written before these records (no
# "schema_version" field). Benchmark records of version 1 still load (`BenchmarkRecord.from_json`).

MODES = ("float32", "float16", "dynamic", "int8")
RANGES = ("minmax", "mse")  # int8 activation ranges (converters/ptq.py)
BIAS_CORRECTIONS = ("none", "analytic", "empirical", "auto")
IO_TYPES = ("int8", "uint8", "float32")
RANDOM_INIT = "random init"
SOURCES = ("tfmobile", "keras.applications")  # who built the network
PATHS = ("tfmobile", "stock")  # tfmobile's converter, or TFLiteConverter as TF's guide shows it
METADATA_NAME = "tfmobile.artifact"  # the .tflite metadata entry holding the ArtifactId


class RecordError(ValueError):
    """A record that cannot be read: the message names the field and what is wrong, one line."""


def parse_json(text: str | bytes):
    """json.loads, with arrays or objects nested too deeply for Python's parser (which raises
    RecursionError, "[[[[..." a thousand deep) a ValueError like any other damaged JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None


# --- The model and its conversion ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """Which network, built how. Two artifacts of equal identity come from the same network."""

    name: str  # the zoo's registry name, e.g. "shufflenet_v1"
    alpha: float = 1.0
    input_size: int = 224
    num_classes: int = 1000
    variants: tuple[tuple[str, Any], ...] = ()  # every variant, resolved, in registry order
    weights: str = RANDOM_INIT  # RANDOM_INIT, "imagenet" or the weights file
    class_names: tuple[str, ...] | None = None  # the classifier's outputs in order, when known
    source: str = "tfmobile"  # or "keras.applications" (the stock twin)

    def __post_init__(self):
        _require(self.source in SOURCES, "model.source", f"one of {', '.join(SOURCES)}",
                 self.source)
        _require(self.alpha > 0 and math.isfinite(self.alpha), "model.alpha",
                 "a positive number", self.alpha)
        _require(self.input_size > 0, "model.input_size", "a positive integer", self.input_size)
        _require(self.num_classes > 0, "model.num_classes", "a positive integer",
                 self.num_classes)
        if self.class_names is not None:
            _require(len(self.class_names) == self.num_classes, "model.class_names",
                     f"{self.num_classes} names (num_classes)", len(self.class_names))
        for pair in self.variants:
            _require(len(pair) == 2 and isinstance(pair[0], str)
                     and isinstance(pair[1], (bool, int)), "model.variants",
                     "name -> boolean or integer", pair)

    @property
    def variant(self) -> dict:
        return dict(self.variants)

    def build_args(self) -> dict:
        """Keyword arguments of tfmobile.models.build for this network."""
        return {"alpha": self.alpha, "input_size": self.input_size,
                "num_classes": self.num_classes, **self.variant}

    def label(self) -> str:
        """fd_mobilenet_0.5_224, shufflenet_v1_1_224_groups3_split_groups, ..._c14: what
        tells this network apart; a variant that is off is left out."""
        parts = [self.name, f"{self.alpha:g}", str(self.input_size)]
        parts += [key if value is True else f"{key}{value}"
                  for key, value in self.variants if value is not False]
        if self.num_classes != 1000:
            parts.append(f"c{self.num_classes}")
        return "_".join(parts)

    def to_json(self) -> dict:
        return {"name": self.name, "alpha": self.alpha, "input_size": self.input_size,
                "num_classes": self.num_classes, "variants": dict(self.variants),
                "weights": self.weights,
                "class_names": None if self.class_names is None else list(self.class_names),
                "source": self.source}

    @classmethod
    def from_json(cls, data, where: str = "model") -> ModelIdentity:
        data = _mapping(data, where)
        variants = _mapping(data.get("variants", {}), f"{where}.variants")
        for key, value in variants.items():
            _require(isinstance(value, (bool, int)), f"{where}.variants.{key}",
                     "true, false or an integer", value)
        fields = {k: v for k, v in data.items() if k in _field_names(cls) and k != "variants"}
        return build_record(cls, fields, where, ready={"variants": tuple(variants.items())})


@dataclasses.dataclass(frozen=True)
class Conversion:
    """How the converter made the .tflite: the options that change what it holds. Options that
    do not apply to the mode take their defaults, so equal conversions compare equal."""

    mode: str = "float32"
    io_type: str = ""  # default: int8 for int8 models, float32 for the others
    per_tensor: bool = False  # int8: one scale per tensor instead of per output channel
    expand_hard_swish: bool = True  # int8: HARD_SWISH written as ADD/MUL (converters/rewrite.py)
    float_depthwise: bool = True  # dynamic: depthwise filters kept float32
    denylist: tuple[str, ...] = ()  # int8: ops or nodes kept in float
    edgetpu: bool = False  # the Edge TPU profile (uint8 io, the variant that maps)
    # int8 post-training quantization methods (converters/ptq.py); defaults chosen by measurement
    equalize: bool | None = None  # cross-layer equalization; None: on with per_tensor only
    ranges: str = "minmax"  # activation ranges: minmax | mse
    # none | analytic | empirical (analytic, then measured) | auto (the best of the three on
    # calibration samples)
    bias_correction: str = "auto"
    adaround: bool = False  # learned weight rounding (slow: minutes)
    path: str = "tfmobile"  # or "stock": TFLiteConverter.from_keras_model as TF's guide shows
    # Detectors: the network's two raw outputs only, without TFLite_Detection_PostProcess; and
    # the op's options that differ from converters.detection.PostProcess's defaults.
    raw_outputs: bool = False
    postprocess: tuple[tuple[str, Any], ...] = ()

    # Fields written only when they differ from their defaults, so that the records (and the
    # keys derived from them) of every classifier conversion stay as they were.
    ADDED_LATER = ("raw_outputs", "postprocess")

    def __post_init__(self):
        _require(self.mode in MODES, "conversion.mode", f"one of {', '.join(MODES)}", self.mode)
        _require(self.path in PATHS, "conversion.path", f"one of {', '.join(PATHS)}", self.path)
        io_type = self.io_type or ("int8" if self.mode == "int8" else "float32")
        _require(io_type in IO_TYPES, "conversion.io_type", f"one of {', '.join(IO_TYPES)}",
                 io_type)
        _require(self.mode == "int8" or io_type == "float32", "conversion.io_type",
                 f"float32 for a {self.mode} model", io_type)
        def normalize(name, value):  # frozen: set once, here
            object.__setattr__(self, name, value)

        _require(self.ranges in RANGES, "conversion.ranges", f"one of {', '.join(RANGES)}",
                 self.ranges)
        _require(self.bias_correction in BIAS_CORRECTIONS, "conversion.bias_correction",
                 f"one of {', '.join(BIAS_CORRECTIONS)}", self.bias_correction)
        normalize("io_type", io_type)
        normalize("denylist", tuple(sorted(self.denylist)))
        normalize("postprocess", tuple(sorted((str(k), v) for k, v in self.postprocess)))
        if self.raw_outputs:
            normalize("postprocess", ())
        if self.mode != "int8" or self.path == "stock":  # int8 options of tfmobile's converter
            for name in ("per_tensor", "expand_hard_swish", "denylist", "edgetpu"):
                normalize(name, _DEFAULTS[name])
            for name, value in _BEFORE_PTQ_METHODS.items():  # none of them applies
                normalize(name, value)
        if self.equalize is None:
            normalize("equalize", self.per_tensor)
        if self.mode != "dynamic" or self.path == "stock":
            normalize("float_depthwise", True)

    def suffix(self) -> str:
        """int8, int8_uint8_io, int8_per_tensor, dynamic_int8_depthwise...: the mode and every
        option that is not the mode's default."""
        parts = [self.mode]
        if self.io_type != ("int8" if self.mode == "int8" else "float32"):
            parts.append(f"{self.io_type}_io")
        if self.per_tensor:
            parts.append("per_tensor")
        if not self.expand_hard_swish:
            parts.append("hard_swish_op")
        if not self.float_depthwise:
            parts.append("int8_depthwise")
        if self.mode == "int8" and self.path == "tfmobile":
            if self.equalize != self.per_tensor:  # the default: on for per-tensor weights only
                parts.append("cle" if self.equalize else "nocle")
            if self.ranges != _DEFAULTS["ranges"]:
                parts.append(f"ranges_{self.ranges}")
            if self.bias_correction != _DEFAULTS["bias_correction"]:
                parts.append(f"bc_{self.bias_correction}")
            if self.adaround:
                parts.append("adaround")
        if self.denylist:
            digest = hashlib.sha256("\n".join(self.denylist).encode()).hexdigest()[:6]
            parts.append(f"denylist{len(self.denylist)}-{digest}")
        if self.raw_outputs:
            parts.append("raw")
        if self.postprocess:
            digest = hashlib.sha256(repr(self.postprocess).encode()).hexdigest()[:6]
            parts.append(f"nms-{digest}")
        return "_".join(parts)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["denylist"] = list(self.denylist)
        data["postprocess"] = dict(self.postprocess)
        for name in self.ADDED_LATER:
            if getattr(self, name) == _DEFAULTS[name]:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data, where: str = "conversion") -> Conversion:
        data = dict(_mapping(data, where))
        # The post-processing options: {name: number or bool}, written as an object.
        options = _mapping(data.pop("postprocess", {}), f"{where}.postprocess")
        for name, value in options.items():
            _require(isinstance(value, (int, float)), f"{where}.postprocess.{name}",
                     "a number or a boolean", value)
        for name, before in _BEFORE_PTQ_METHODS.items():  # written before these existed
            data.setdefault(name, before)
        return build_record(cls, {k: v for k, v in data.items() if k in _field_names(cls)}, where,
                            ready={"postprocess": tuple(sorted(options.items()))})


_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Conversion)}
# What a conversion record without the post-training quantization fields was made with.
_BEFORE_PTQ_METHODS = {"equalize": False, "ranges": "minmax", "bias_correction": "none",
                       "adaround": False}


@dataclasses.dataclass(frozen=True)
class ArtifactId:
    """A converted model: which network, converted how. Its file name comes from here."""

    model: ModelIdentity
    conversion: Conversion

    def stem(self) -> str:
        """e.g. shufflenet_v1_1_224_groups3_int8, stock_mobilenet_v2_1_224_float32."""
        prefix = "stock_" if self.conversion.path == "stock" else ""
        return f"{prefix}{self.model.label()}_{self.conversion.suffix()}"

    def float_twin(self) -> ArtifactId:
        """The same network converted to float32 the same way: what int8 is compared with."""
        return ArtifactId(self.model, Conversion(mode="float32", path=self.conversion.path))

    def stock_twin(self) -> ArtifactId:
        """The same network from keras.applications, converted the stock way, same mode."""
        return ArtifactId(dataclasses.replace(self.model, source="keras.applications"),
                          Conversion(mode=self.conversion.mode, io_type=self.conversion.io_type,
                                     path="stock"))

    def to_json(self) -> dict:
        return {"model": self.model.to_json(), "conversion": self.conversion.to_json()}

    @classmethod
    def from_json(cls, data, where: str = "artifact") -> ArtifactId:
        data = _mapping(data, where)
        return cls(ModelIdentity.from_json(_required(data, "model", where), f"{where}.model"),
                   Conversion.from_json(_required(data, "conversion", where), f"{where}.conversion"))


# --- The converter's report ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "shape": list(self.shape)}


@dataclasses.dataclass(frozen=True)
class Execution:
    """How LiteRT runs the model on a CPU: delegate partitions and the ops left outside."""

    partitions: int
    ops_outside_delegate: dict[str, int]
    delegate: str = "XNNPACK"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class GraphFacts:
    """What the .tflite holds (converters.report.graph_facts)."""

    path: str
    file_bytes: int
    sha256: str
    ops: dict[str, int]
    tensor_types: dict[str, int]
    fully_integer: bool
    float_ops: tuple[dict, ...]
    input: TensorInfo
    output: TensorInfo
    execution: Execution

    def to_json(self) -> dict:
        return {"path": self.path, "file_bytes": self.file_bytes, "sha256": self.sha256,
                "ops": dict(self.ops), "tensor_types": dict(self.tensor_types),
                "fully_integer": self.fully_integer, "float_ops": list(self.float_ops),
                "io": {"input": self.input.to_json(), "output": self.output.to_json()},
                "execution": self.execution.to_json()}

    @classmethod
    def from_json(cls, data, where: str = "artifact") -> GraphFacts:
        data = _mapping(data, where)
        io = _mapping(_required(data, "io", where), f"{where}.io")
        fields = {k: v for k, v in data.items() if k in _field_names(cls)}
        return build_record(cls, {**fields, "input": io.get("input"), "output": io.get("output")},
                      where)


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """The converted model against the float Keras model, on held-out images."""

    samples: int
    top1_agreement: float
    topk_overlap: float  # top-5 (top-k for fewer than 5 classes) overlap
    k: int
    sqnr_db: float | None  # None: identical outputs (infinite)
    cosine: float
    max_abs_error: float
    held_out: dict
    against: str = "float Keras model (logits)"

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data[f"top{self.k}_overlap"] = data.pop("topk_overlap")
        return data

    @classmethod
    def from_json(cls, data, where: str = "fidelity") -> Fidelity:
        data = dict(_mapping(data, where))
        overlap = [key for key in data if re.fullmatch(r"top\d+_overlap", key)]
        _require(len(overlap) == 1, f"{where}.topK_overlap", "one top-k overlap", overlap)
        data["k"] = int(overlap[0][3:-8])
        data["topk_overlap"] = data.pop(overlap[0])
        return build_record(cls, data, where)


@dataclasses.dataclass(frozen=True)
class ModelStats:
    params: int
    macs: int

    def __post_init__(self):
        _require_at_least(self, 0, "params", "macs")


@dataclasses.dataclass
class ConversionReport:
    """The model card the converter writes beside each .tflite."""

    model: ModelIdentity
    stats: ModelStats
    conversion: Conversion
    artifact: GraphFacts
    seconds: float
    converter_path: str  # which converter calls made it, in words
    quantization: dict | None = None
    preprocessing: dict | None = None
    calibration: dict | None = None
    fidelity: Fidelity | None = None
    layer_errors: list | None = None
    edgetpu: dict | None = None
    versions: dict | None = None
    git_commit: str | None = None
    created: str | None = None
    schema_version: int = SCHEMA_VERSION
    # Detectors: the post-processing op, the partitions and the fidelity of boxes and scores
    # (converters.detection); `fidelity` is the classifiers' section.
    detection: dict | None = None

    @property
    def artifact_id(self) -> ArtifactId:
        return ArtifactId(self.model, self.conversion)

    def to_json(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "model": {**self.model.to_json(), "params": self.stats.params,
                      "macs": self.stats.macs,
                      "output": "logits" if self.detection is None else "detections"},
            "conversion": {**self.conversion.to_json(), "converter": self.converter_path,
                           "seconds": self.seconds, "quantization": self.quantization},
            "artifact": {**self.artifact.to_json(), "stem": self.artifact_id.stem()},
            "preprocessing": self.preprocessing,
            "calibration": self.calibration,
            "fidelity": None if self.fidelity is None else self.fidelity.to_json(),
            "layer_errors": self.layer_errors,
            "edgetpu": self.edgetpu,
            "versions": self.versions,
            "git_commit": self.git_commit,
            "created": self.created,
            **({} if self.detection is None else {"detection": self.detection}),
        }

    @classmethod
    def from_json(cls, data, where: str = "report") -> ConversionReport:
        data = _mapping(data, where)
        _check_version(data, where, legacy_readable=False)
        model = _mapping(_required(data, "model", where), f"{where}.model")
        conversion = _mapping(_required(data, "conversion", where), f"{where}.conversion")
        fidelity = data.get("fidelity")
        ready = {
            "model": ModelIdentity.from_json(model, f"{where}.model"),
            "stats": build_record(ModelStats, model, f"{where}.model"),
            "conversion": Conversion.from_json(conversion, f"{where}.conversion"),
            "artifact": GraphFacts.from_json(_required(data, "artifact", where), f"{where}.artifact"),
            "fidelity": None if fidelity is None else Fidelity.from_json(fidelity,
                                                                        f"{where}.fidelity"),
        }
        rest = {"seconds": conversion.get("seconds"),
                "converter_path": conversion.get("converter"),
                "quantization": conversion.get("quantization"),
                "schema_version": data["schema_version"],
                **{key: data.get(key) for key in ("preprocessing", "calibration", "layer_errors",
                                                   "edgetpu", "versions", "git_commit",
                                                   "created", "detection")}}
        return build_record(cls, rest, where, ready=ready)

    @classmethod
    def read(cls, path) -> ConversionReport:
        """The report in a file; RecordError (one line, naming the file) when it cannot be."""
        try:
            with open(path, encoding="utf-8") as f:
                data = parse_json(f.read())
        except OSError as err:
            raise RecordError(f"cannot read the report {path}: {err.strerror}") from None
        except ValueError as err:
            raise RecordError(f"the report {path} is not JSON ({err})") from None
        try:
            return cls.from_json(data)
        except RecordError as err:
            raise RecordError(f"the report {path}: {err}") from None


# --- Benchmarks --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """What a benchmark cell ran: a file, and what it is when tfmobile's converter made it."""

    path: str
    sha256: str
    size_bytes: int
    artifact: ArtifactId | None = None  # None: a model from elsewhere
    params: int | None = None
    macs: int | None = None
    compiled_for: str | None = None  # "edgetpu": edgetpu_compiler's output (edgetpu-custom-op)
    legacy_name: str | None = None  # schema 1 records: the name they were stored under

    def __post_init__(self):
        _require_at_least(self, 0, "size_bytes", "params", "macs")

    @property
    def name(self) -> str:
        """How tables name the model: the artifact's stem, else the file's."""
        if self.artifact is not None:
            return self.artifact.stem() + ("_edgetpu" if self.compiled_for == "edgetpu" else "")
        if self.legacy_name:
            return self.legacy_name
        stem = self.path.replace("\\", "/").rsplit("/", 1)[-1]
        return stem[: -len(".tflite")] if stem.endswith(".tflite") else stem

    @property
    def mode(self) -> str | None:
        return self.artifact.conversion.mode if self.artifact else None

    def to_json(self) -> dict:
        return {"path": self.path, "name": self.name, "sha256": self.sha256,
                "size_bytes": self.size_bytes,
                "artifact": None if self.artifact is None else self.artifact.to_json(),
                "params": self.params, "macs": self.macs, "compiled_for": self.compiled_for}

    @classmethod
    def from_json(cls, data, where: str = "model") -> ModelFile:
        data = _mapping(data, where)
        artifact = data.get("artifact")
        return build_record(cls, {k: v for k, v in data.items()
                            if k in _field_names(cls) and k != "artifact"}, where,
                      ready={"artifact": None if artifact is None
                             else ArtifactId.from_json(artifact, f"{where}.artifact")})


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """How a cell runs: threads, delegate, CPU pinning, warm-up and timed runs."""

    threads: int = 1
    delegate: str = "xnnpack"
    cpus: str = "big"  # big (the fastest cluster) | all | a hex mask such as f0
    warmup_runs: int = 10
    num_runs: int = 50
    # Added later: written only when not at their default, so that a cell's key (a hash of
    # this record) stays what it was and --resume still finds older cells.
    runtime: str = "interpreter"  # interpreter | compiled_model (ai_edge_litert's new API)
    check: bool = False  # the outputs checked against references computed on the host
    duration_s: float | None = None  # a sustained run of this many seconds instead of num_runs
    require_full_delegation: bool = False  # fail when the delegate leaves ops to the CPU
    op_profiling: bool = False  # benchmark_model's per-op profile (--enable_op_profiling)

    ADDED_LATER = ("runtime", "check", "duration_s", "require_full_delegation", "op_profiling")

    def __post_init__(self):
        _require_at_least(self, 1, "threads", "num_runs")
        _require_at_least(self, 0, "warmup_runs")
        _require(self.runtime in ("interpreter", "compiled_model"), "runtime",
                 "interpreter or compiled_model", self.runtime)
        _require(self.duration_s is None or (math.isfinite(self.duration_s)
                                             and self.duration_s > 0),
                 "duration_s", "a positive number of seconds", self.duration_s)

    def label(self) -> str:
        """'xnnpack, 1 thread', and whatever is not the default (pinning, runtime...)."""
        text = f"{self.delegate}, {self.threads} thread{'s' if self.threads > 1 else ''}"
        extras = [f"cpus {self.cpus}" if self.cpus != "big" else None,
                  "CompiledModel" if self.runtime == "compiled_model" else None,
                  f"sustained {self.duration_s:g} s" if self.duration_s else None,
                  "full delegation required" if self.require_full_delegation else None,
                  "op profiling" if self.op_profiling else None,
                  "outputs checked" if self.check else None]
        return ", ".join([text] + [e for e in extras if e])

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        for name in self.ADDED_LATER:
            if data[name] == defaults[name]:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data, where: str = "config") -> BenchConfig:
        return build_record(cls, _mapping(data, where), where)


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """Which run a record belongs to, and its round: --rounds N runs every cell N times."""

    id: str
    round: int = 1
    rounds: int = 1

    def __post_init__(self):
        _require(1 <= self.round <= self.rounds, "run.round", f"between 1 and {self.rounds}",
                 self.round)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Latency:
    """Milliseconds. benchmark_model gives mean and std (newer builds add the percentiles); the
    device runner gives all but p5/p95."""

    mean: float | None = None
    std: float | None = None
    median: float | None = None
    p90: float | None = None
    min: float | None = None
    max: float | None = None
    p5: float | None = None
    p95: float | None = None

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            _require(value is None or (math.isfinite(value) and value >= 0),
                     f"latency_ms.{field.name}", "a finite number of milliseconds >= 0", value)
        _require(self.median is not None or self.mean is not None, "latency_ms",
                 "a median or a mean", None)
        _require(self.typical > 0, f"latency_ms.{'median' if self.median is not None else 'mean'}",
                 "more than 0 ms (speed-ups divide by it)", self.typical)

    @property
    def typical(self) -> float:
        """The median where measured, else the mean."""
        return self.median if self.median is not None else self.mean

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Metrics:
    latency_ms: Latency
    latency_statistic: str = "median"
    init_ms: float | None = None
    first_ms: float | None = None
    warmup_avg_ms: float | None = None
    runs: int | None = None
    peak_rss_mb: float | None = None
    partitions: int | None = None
    ops_outside_delegate: dict[str, int] | None = None
    edgetpu_ops: int | None = None
    runtime: dict | None = None
    rounds: tuple[float, ...] | None = None  # each round's latency, once merged (compare)
    check: dict | None = None  # the outputs against the host's references (device runner)
    sustained: dict | None = None  # a sustained run's samples and throttling verdict
    op_profile: dict | None = None  # benchmark_model's per-op profile (android_bench.op_profile)
    fully_accelerated: bool | None = None  # CompiledModel's own answer

    def __post_init__(self):
        _require_at_least(self, 0, "init_ms", "first_ms", "warmup_avg_ms", "runs",
                          "peak_rss_mb", "partitions", "edgetpu_ops")
        _require(self.rounds is None or all(r >= 0 for r in self.rounds), "rounds",
                 "latencies of at least 0 ms", None)

    def to_json(self) -> dict:
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        data["latency_ms"] = self.latency_ms.to_json()
        data["rounds"] = None if self.rounds is None else list(self.rounds)
        return data


@dataclasses.dataclass(frozen=True)
class BenchmarkRecord:
    """One cell of a benchmark run, as the results store keeps it."""

    key: str  # which cell: target, model (sha256), configuration, runner
    status: str  # ok | failed
    runner: str
    target: dict  # probe.describe(): name, kind, and what the target is
    model: ModelFile
    config: BenchConfig
    started: str
    finished: str
    metrics: Metrics | None = None
    reason: str | None = None  # why it failed
    run: RunInfo | None = None
    raw_output: str | None = None
    pinning: dict | None = None
    cooldown: dict | None = None
    host_versions: dict | None = None
    notes: tuple[str, ...] | None = None  # what a reader of the figures must know (NNAPI...)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        _require(self.status in ("ok", "failed"), "status", "ok or failed", self.status)
        _require(self.status != "ok" or self.metrics is not None, "metrics",
                 "present in an ok record", None)
        for key in ("name", "kind"):
            _require(isinstance(self.target.get(key), str), f"target.{key}", "a string",
                     self.target.get(key))

    @property
    def target_name(self) -> str:
        return self.target["name"]

    def to_json(self) -> dict:
        data = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        for name in ("model", "config", "metrics", "run"):
            value = data[name]
            data[name] = None if value is None else value.to_json()
        return data

    @classmethod
    def from_json(cls, data, where: str = "record") -> BenchmarkRecord:
        data = dict(_mapping(data, where))
        if _check_version(data, where, legacy_readable=True) == 1:
            data = _upgrade_benchmark_record(data, where)
        metrics = data.get("metrics")
        run = data.get("run")
        ready = {
            "model": ModelFile.from_json(_required(data, "model", where), f"{where}.model"),
            "config": BenchConfig.from_json(_required(data, "config", where), f"{where}.config"),
            "metrics": None if metrics is None else build_record(
                Metrics, {k: v for k, v in _mapping(metrics, f"{where}.metrics").items()
                          if k in _field_names(Metrics)}, f"{where}.metrics"),
            "run": None if run is None else build_record(RunInfo, _mapping(run, f"{where}.run"),
                                                   f"{where}.run"),
        }
        rest = {k: v for k, v in data.items() if k in _field_names(cls) and k not in ready}
        return build_record(cls, rest, where, ready=ready)


def _upgrade_benchmark_record(data: dict, where: str) -> dict:
    """A version 1 record (before typed records): the model described by file, its identity
    unknown (version 1 kept only a name derived from the file name, which is not parsed)."""
    model = dict(_mapping(_required(data, "model", where), f"{where}.model"))
    data["model"] = {"path": model.get("path"), "sha256": model.get("sha256"),
                     "size_bytes": model.get("size_bytes"), "params": model.get("params"),
                     "macs": model.get("macs"), "compiled_for": model.get("compiled_for"),
                     "legacy_name": model.get("name")}
    metrics = data.get("metrics")
    if isinstance(metrics, dict):
        data["metrics"] = {k: v for k, v in metrics.items() if k in _field_names(Metrics)}
    data["schema_version"] = SCHEMA_VERSION
    return data


# --- Reading records: types and values checked ---------------------------------------------------


def _require(condition: bool, field: str, expected: str, got) -> None:
    if not condition:
        raise RecordError(f"{field} must be {expected}, got {_show(got)}")


def _require_at_least(record, least, *names: str) -> None:
    """Each named number of `record` (None: not measured) at least `least`."""
    for name in names:
        value = getattr(record, name)
        _require(value is None or value >= least, name, f"at least {least}", value)


def _show(value) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) \
        else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _required(data: Mapping, key: str, where: str):
    if key not in data:
        raise RecordError(f"{where}.{key} is missing")
    return data[key]


def _mapping(data, where: str) -> Mapping:
    if not isinstance(data, dict):
        raise RecordError(f"{where} must be an object, got {_show(data)}")
    return data


def _check_version(data: Mapping, where: str, legacy_readable: bool) -> int:
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError(f"{where}.schema_version must be a positive integer, got "
                          f"{_show(version)}")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{where} has schema version {version}; this tfmobile reads versions "
                          f"up to {SCHEMA_VERSION}: upgrade tfmobile")
    if version == 1 and not legacy_readable:
        raise RecordError(f"{where} has schema version 1 (written before typed records); "
                          "convert the model again to write a version "
                          f"{SCHEMA_VERSION} report")
    return version


def _field_names(cls) -> set[str]:
    return {field.name for field in dataclasses.fields(cls)}


def build_record(cls, data: Mapping, where: str, ready: Mapping | None = None):
    """cls(**data) with every value checked against its field's type."""
    hints = typing.get_type_hints(cls)
    values = dict(ready or {})
    for field in dataclasses.fields(cls):
        if field.name in values:
            continue
        if field.name not in data:
            if (field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING):
                raise RecordError(f"{where}.{field.name} is missing")
            continue
        values[field.name] = _typed(data[field.name], hints[field.name], f"{where}.{field.name}")
    try:
        return cls(**values)
    except RecordError as err:
        raise RecordError(f"{where}: {err}") from None


def _typed(value, hint, where: str):
    """`value` (parsed JSON) as `hint` says, or RecordError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _typed(value, inner, where)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return build_record(hint, _mapping(value, where), where)
    if hint is bool:
        _require(isinstance(value, bool), where, "true or false", value)
        return value
    if hint is int:
        _require(isinstance(value, int) and not isinstance(value, bool), where, "an integer",
                 value)
        return value
    if hint is float:
        _require(isinstance(value, (int, float)) and not isinstance(value, bool)
                 and math.isfinite(value), where, "a finite number", value)
        return float(value)
    if hint is str:
        _require(isinstance(value, str), where, "a string", value)
        return value
    if hint is dict or origin is dict:
        _mapping(value, where)
        if not args:
            return dict(value)
        return {_typed(k, args[0], f"{where} key"): _typed(v, args[1], f"{where}.{k}")
                for k, v in value.items()}
    if hint is list or origin in (list, tuple):
        _require(isinstance(value, list), where, "a list", value)
        if not args:
            return list(value)
        item = args[0]
        items = [_typed(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    raise TypeError(f"no reader for {hint!r} ({where})")  # a bug here, not in the data

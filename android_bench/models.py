"""The models a benchmark runs: `.tflite` files, or zoo names the converter builds first.

A zoo entry is `name[:key=value...]`, e.g. `mobilenet_v1:alpha=0.5:input_size=160`,
`shufflenet_v1:groups=8`, `mobilenet_v3_small:minimalistic`; it becomes one `.tflite` per mode
(float32, int8, ...) in the artifacts directory, reused when already there. `stock:NAME[...]`
is the same network from keras.applications converted the stock way (converters/stock.py), to
time ours against. `@SUITE` names a list of entries (android_bench/suites.py). Whatever the
converter's JSON report beside a `.tflite` says (MACs, params, mode) travels with the model into
every result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import re


@dataclasses.dataclass(frozen=True)
class Model:
    path: pathlib.Path
    name: str  # the artifact stem, e.g. fd_mobilenet_1_224_int8
    sha256: str
    size_bytes: int
    mode: str | None  # float32 | float16 | dynamic | int8, when the report says
    architecture: str | None
    macs: int | None
    params: int | None
    compiled_for: str | None = None  # "edgetpu": holds edgetpu-custom-op (edgetpu_compiler's)
    input_size: int | None = None

    def describe(self) -> dict:
        return {"path": str(self.path), "name": self.name, "sha256": self.sha256,
                "size_bytes": self.size_bytes, "mode": self.mode,
                "architecture": self.architecture, "macs": self.macs, "params": self.params,
                "compiled_for": self.compiled_for, "input_size": self.input_size}


EDGETPU_SUFFIX = "_edgetpu"  # edgetpu_compiler writes X.tflite to X_edgetpu.tflite
EDGETPU_OP = b"edgetpu-custom-op"
MODES = ("float32", "float16", "dynamic", "int8")  # the converter's (converters/pipeline.py)


def _mode_from_name(stem: str) -> str | None:
    stem = re.sub(r"(_u?int8_io|_float32_io)?(_edgetpu)?$", "", stem)
    suffix = stem.rsplit("_", 1)[-1]
    return suffix if suffix in MODES else None


def report_for(path: pathlib.Path) -> dict:
    """The converter's report beside a `.tflite`; for a compiled `X_edgetpu.tflite`, the one
    of the `X.tflite` it was compiled from (same network, MACs and quantization)."""
    candidates = [path.with_suffix(".json")]
    if path.stem.endswith(EDGETPU_SUFFIX):
        candidates.append(path.with_name(path.stem[:-len(EDGETPU_SUFFIX)] + ".json"))
    for candidate in candidates:
        if candidate.exists():
            return json.loads(candidate.read_text())
    return {}


def from_file(path: pathlib.Path) -> Model:
    """A `.tflite` and, when the converter wrote one beside it (or beside the model it was
    compiled from), its report."""
    content = path.read_bytes()
    if content[4:8] != b"TFL3":
        raise ValueError(f"{path} is not a .tflite model (no TFL3 identifier)")
    report = report_for(path)
    model_info = report.get("model", {})
    return Model(
        path=path,
        name=path.stem,
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        mode=report.get("conversion", {}).get("mode") or _mode_from_name(path.stem),
        architecture=model_info.get("name"),
        macs=model_info.get("macs"),
        params=model_info.get("params"),
        # The custom op's name is a string in the flatbuffer: no need to parse the model.
        compiled_for="edgetpu" if EDGETPU_OP in content else None,
        input_size=model_info.get("input_size"),
    )


def artifact_stem(name: str, args: dict, mode: str) -> str:
    from tfmobile.artifacts import artifact_stem as stem  # light: no TensorFlow

    return stem(name, args, mode)


def parse_zoo_entry(entry: str) -> tuple[str, dict]:
    """`mobilenet_v1:alpha=0.5:input_size=160` -> ("mobilenet_v1", {...})."""
    name, _, options = entry.partition(":")
    args: dict = {}
    for option in filter(None, options.split(":")):
        key, sep, value = option.partition("=")
        if not sep:
            args[key] = True  # a bare flag such as `minimalistic`
        elif key in ("alpha",):
            args[key] = float(value)
        elif key in ("input_size", "groups", "num_classes"):
            args[key] = int(value)
        else:
            raise ValueError(f"unknown option {key!r} in {entry!r}; "
                             "use alpha=, input_size=, groups=, num_classes= or minimalistic")
    return name, args


STOCK = "stock:"


def expand(entries: list[str], input_size: int = 224) -> list[str]:
    """`@suite` entries replaced by their lists, duplicates dropped, order kept."""
    from android_bench import suites

    expanded = []
    for entry in entries:
        if entry.startswith("@"):
            if entry[1:] not in suites.SUITES:
                raise ValueError(f"unknown suite {entry!r}; choose from "
                                 f"{', '.join('@' + s for s in suites.SUITES)}")
            expanded += suites.SUITES[entry[1:]](input_size)
        else:
            expanded.append(entry)
    return list(dict.fromkeys(expanded))


def resolve(entries: list[str], modes: list[str], artifacts_dir: pathlib.Path, *,
            input_size: int = 224, rebuild: bool = False, log=print) -> list[Model]:
    """Paths as they are; zoo and stock entries converted (once per mode) into
    `artifacts_dir`."""
    from converters import stock as stock_lib  # light: TensorFlow only when it converts

    planned = []  # everything checked before the first (slow) conversion
    for entry in expand(entries, input_size):
        if entry.endswith(".tflite"):
            if not pathlib.Path(entry).is_file():
                raise ValueError(f"model file {entry} does not exist")
            planned.append((entry, None, None, False))
            continue
        stock = entry.startswith(STOCK)
        name, args = parse_zoo_entry(entry[len(STOCK):] if stock else entry)
        from tfmobile import models as zoo  # TensorFlow: only when a zoo name needs it

        if name not in zoo.available():
            raise ValueError(f"{entry!r} is neither a .tflite file nor a zoo network "
                             f"({', '.join(zoo.available())})")
        if stock and name not in stock_lib.available():
            raise ValueError(f"{entry!r}: {name} has no keras.applications equivalent "
                             f"(stock: takes {', '.join(stock_lib.available())})")
        planned.append((entry, name, {"alpha": 1.0, "input_size": input_size, **args}, stock))

    resolved = []
    for entry, name, args, stock in planned:
        if name is None:
            resolved.append(from_file(pathlib.Path(entry)))
            continue
        for mode in modes:
            stem = stock_lib.stem(name, args, mode) if stock else artifact_stem(name, args, mode)
            target = artifacts_dir / f"{stem}.tflite"
            if rebuild or not (target.exists() and target.with_suffix(".json").exists()):
                from converters import pipeline
                from tfmobile import artifacts as converted

                artifacts_dir.mkdir(parents=True, exist_ok=True)
                log(f"converting {stem} ...")
                if stock:
                    stock_lib.convert(name, args, mode, artifacts_dir)
                else:
                    converted.convert_zoo_model(name, args, pipeline.Request(mode=mode),
                                                artifacts_dir, progress=False)
            resolved.append(from_file(target))
    return resolved

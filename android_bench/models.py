"""The models a benchmark runs: `.tflite` files, or zoo names the converter builds first.

A zoo entry is `name[:key=value...]`, e.g. `mobilenet_v1:alpha=0.5:input_size=160`,
`shufflenet_v1:groups=8`, `mobilenet_v3_small:minimalistic`; it becomes one `.tflite` per mode
(float32, int8, ...) in the artifacts directory, reused when the one there was made from the
same records. `stock:NAME[...]` is the same network from keras.applications converted the
stock way (converters/stock.py), to time ours against. `@SUITE` names a list of entries
(android_bench/suites.py).

Detectors are zoo entries too (`ssdlite_mobilenet_v3_small:reduced_tail`): their network in the
mode, ending in TFLite_Detection_PostProcess (tfmobile.artifacts.convert_detector_model). An
entry without input_size= takes the run's --input_size when one is given, else its network's
own default (224 for classifiers, the paper's 320 for SSDLite).

What a model is travels with it as records (tfmobile_core.records): the ArtifactId embedded in
a .tflite the converter wrote, and the report beside it (MACs, params). A file name is only
ever a file name.
"""

from __future__ import annotations

import hashlib
import pathlib

from tfmobile_core.records import (METADATA_NAME, MODES, ArtifactId, Conversion,
                                   ConversionReport, ModelFile, ModelIdentity, RecordError)

EDGETPU_SUFFIX = "_edgetpu"  # edgetpu_compiler writes X.tflite to X_edgetpu.tflite
EDGETPU_OP = b"edgetpu-custom-op"
STOCK = "stock:"


class ModelError(ValueError):
    """A model entry or file that cannot be benchmarked; one line."""


def _report(path: pathlib.Path, sha256: str | None) -> ConversionReport | None:
    """The converter's report at `path` if it describes the file of that sha256 (None: any)."""
    if not path.is_file():
        return None
    try:
        report = ConversionReport.read(path)
    except RecordError:
        return None  # a foreign or older JSON file beside the model: it does not describe it
    if sha256 is not None and report.artifact.sha256 != sha256:
        return None  # a stale report: the model beside it was replaced
    return report


def identify(path: pathlib.Path, content: bytes, sha256: str) -> tuple[ArtifactId | None,
                                                                      ConversionReport | None]:
    """What the model is. The converter embeds its ArtifactId in every .tflite it writes, and
    its report beside it holds the operation counts. A model that edgetpu_compiler compiled
    outside tfmobile has lost the embedded record (the compiler drops metadata): its source
    is found by the compiler's own output name, X_edgetpu.tflite for X.tflite, and X's report
    is taken only when X is still the file it describes."""
    from converters import litert

    report = _report(path.with_suffix(".json"), sha256)
    try:
        stored = litert.read_metadata(content, METADATA_NAME)
        embedded = ArtifactId.from_json(stored) if stored is not None else None
    except Exception:  # noqa: BLE001 - a damaged record (or flatbuffer): the model is foreign
        embedded = None
    if report is None and path.stem.endswith(EDGETPU_SUFFIX):
        source = path.with_name(path.stem[: -len(EDGETPU_SUFFIX)] + ".tflite")
        if source.is_file():
            source_sha = hashlib.sha256(source.read_bytes()).hexdigest()
            report = _report(source.with_suffix(".json"), source_sha)
    if embedded is None and report is not None:
        embedded = report.artifact_id
    if report is not None and report.artifact_id != embedded:
        report = None  # the report is of another model
    return embedded, report


def from_file(path: pathlib.Path) -> ModelFile:
    """A `.tflite` and what the records say it is; ModelError (one line) for a file that is
    missing or not a .tflite model."""
    from converters import litert

    try:
        content = path.read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read model {path}: {err.strerror}") from None
    try:
        litert.check_model(content, str(path))
    except litert.NotAModel as err:
        raise ModelError(str(err)) from None
    sha256 = hashlib.sha256(content).hexdigest()
    artifact, report = identify(path, content, sha256)
    return ModelFile(
        path=str(path), sha256=sha256, size_bytes=len(content), artifact=artifact,
        params=report.stats.params if report else None,
        macs=report.stats.macs if report else None,
        # The custom op's name is a string in the flatbuffer: no need to parse the model.
        compiled_for="edgetpu" if EDGETPU_OP in content else None,
    )


def parse_zoo_entry(entry: str) -> tuple[str, dict]:
    """`mobilenet_v1:alpha=0.5:input_size=160` -> ("mobilenet_v1", {...}); the options are
    build()'s, the variants those the registry declares."""
    from tfmobile import models

    name, _, options = entry.partition(":")
    variants = models.all_variants()
    args: dict = {}
    for option in filter(None, options.split(":")):
        key, sep, value = option.partition("=")
        if key in args:
            raise ModelError(f"{entry!r} gives {key} twice")
        try:
            if key == "alpha":
                args[key] = float(value)
            elif key in ("input_size", "num_classes"):
                args[key] = int(value)
            elif key in variants and isinstance(variants[key].default, bool):
                args[key] = not sep or value.lower() in ("1", "true", "yes")
                if sep and value.lower() not in ("0", "1", "true", "false", "yes", "no"):
                    raise ValueError(value)
            elif key in variants:
                args[key] = int(value)
            else:
                raise ModelError(f"unknown option {key!r} in {entry!r}; use alpha=, "
                                 "input_size=, num_classes= or a variant ("
                                 + ", ".join(variants) + ")")
        except ValueError as err:
            if isinstance(err, ModelError):
                raise
            raise ModelError(f"bad value {value!r} for {key} in {entry!r}") from None
    return name, args


def expand(entries: list[str], input_size: int | None = None) -> list[str]:
    """`@suite` entries replaced by their lists, duplicates dropped, order kept. `input_size`
    (None: each network's default) is the suites' to use, as their papers scale it."""
    from android_bench import suites

    expanded = []
    for entry in entries:
        if entry.startswith("@"):
            if entry[1:] not in suites.SUITES:
                raise ModelError(f"unknown suite {entry!r}; choose from "
                                 f"{', '.join('@' + s for s in suites.SUITES)}")
            expanded += suites.SUITES[entry[1:]](input_size)
        else:
            expanded.append(entry)
    return list(dict.fromkeys(expanded))


def zoo_identity(entry: str, input_size: int | None = None) -> tuple[ModelIdentity, bool]:
    """A zoo or stock: entry's ModelIdentity (variants resolved) and whether it is stock.
    `input_size` applies unless the entry gives one; None: the network's default (a
    detector's is its paper's, 320 for SSDLite, not a classifier's 224)."""
    from tfmobile import artifacts, models

    stock = entry.startswith(STOCK)
    name, args = parse_zoo_entry(entry[len(STOCK):] if stock else entry)
    if name not in models.available("all"):
        raise ModelError(f"{entry!r} is neither a .tflite file nor a zoo network "
                         f"({', '.join(models.available('all'))})")
    if stock and name not in artifacts.stock_available():
        raise ModelError(f"{entry!r}: {name} has no keras.applications equivalent "
                         f"(stock: takes {', '.join(artifacts.stock_available())})")
    try:
        identity = models.identity(name, **{"input_size": input_size, **args})
    except ValueError as err:
        raise ModelError(f"{entry!r}: {err}") from None
    return identity, stock


def is_detector(name: str) -> bool:
    """Whether the zoo network `name` is a detector (its conversion ends in the post-processing
    op, its accuracy is mAP); False for names the zoo does not know."""
    from tfmobile import models

    try:
        return models.entry(name).task == "detection"
    except ValueError:
        return False


def resolve(entries: list[str], modes: list[str], artifacts_dir: pathlib.Path, *,
            input_size: int | None = None, rebuild: bool = False, log=print) -> list[ModelFile]:
    """Paths as they are; zoo and stock entries converted (once per mode) into
    `artifacts_dir`, or taken from there when the artifact there holds the same records.
    Everything is checked before the first (slow) conversion. `input_size`: zoo_identity's."""
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ModelError(f"unknown mode {unknown[0]!r}; choose from {', '.join(MODES)}")
    planned: list[tuple[pathlib.Path | None, ArtifactId | None, ModelIdentity | None]] = []
    for entry in expand(entries, input_size):
        if entry.endswith(".tflite"):
            if not pathlib.Path(entry).is_file():
                raise ModelError(f"model file {entry} "
                                 + ("is a directory" if pathlib.Path(entry).is_dir()
                                    else "does not exist"))
            planned.append((pathlib.Path(entry), None, None))
            continue
        identity, stock = zoo_identity(entry, input_size)
        if not modes:
            raise ModelError(f"--modes is empty: no mode to convert {entry} in; choose from "
                             f"{', '.join(MODES)}")
        for mode in modes:
            ours = ArtifactId(identity, Conversion(mode=mode))
            planned.append((None, ours.stock_twin() if stock else ours, identity))

    resolved: dict[str, ModelFile] = {}  # by sha256: the same model named twice runs once
    for path, artifact, identity in planned:
        if artifact is None:
            found = from_file(path)
            resolved.setdefault(found.sha256, found)
            continue
        target = artifacts_dir / f"{artifact.stem()}.tflite"
        if target.exists() and not rebuild:
            try:
                found = from_file(target)
            except ModelError as err:
                raise ModelError(f"{err}: pass --rebuild to convert it again") from None
            if found.artifact == artifact and found.macs is not None:
                resolved.setdefault(found.sha256, found)
                continue
            if found.artifact is not None and found.artifact != artifact:
                raise ModelError(f"{target} holds another model ({found.artifact.model.weights}"
                                 f" weights): pass --rebuild to replace it, or another "
                                 "--artifacts_dir")
        from tfmobile import artifacts
        from converters import pipeline

        artifacts_dir.mkdir(parents=True, exist_ok=True)
        log(f"converting {artifact.stem()} ...")
        if artifact.conversion.path == "stock":
            artifacts.convert_stock(identity, artifact.conversion.mode, artifacts_dir)
        elif is_detector(identity.name):
            # Calibrated and checked on the composed detection set, as tfmobile.convert does
            # without --calibration: the classifier's photographs hold no objects to score.
            artifacts.convert_detector_model(identity, artifact.conversion, artifacts_dir,
                                             progress=False)
        else:
            artifacts.convert_zoo_model(identity, pipeline.Request(conversion=artifact.conversion),
                                        artifacts_dir, progress=False)
        found = from_file(target)
        resolved.setdefault(found.sha256, found)
    return list(resolved.values())

"""The registry of network names: `available()`, `build(name, ...)`, `get_spec(name, ...)`,
`identity(name, ...)`.

Each network module registers a thin generator that turns (alpha, variants) into a
`NetworkSpec`, and declares its variants (`Variant`) once: the command-line flags, the artifact
names and the records' identities all come from these declarations. `build` validates the
arguments, assembles the Keras model and loads weights.

Nothing here imports Keras until a model is built, so commands can list networks, check
arguments and name artifacts without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import TYPE_CHECKING
from collections.abc import Callable, Mapping

from tfmobile.models.spec import NetworkSpec
from tfmobile_core.records import RANDOM_INIT, ModelIdentity

if TYPE_CHECKING:
    import keras

MIN_INPUT_SIZE = 32  # every network here downsamples 32x


@dataclasses.dataclass(frozen=True)
class Variant:
    """A network variant: the values it takes (the first is the default) and what it means."""

    choices: tuple
    help: str

    @property
    def default(self):
        return self.choices[0]


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    make_spec: Callable[..., NetworkSpec]  # (alpha, **variants) -> NetworkSpec
    paper: str
    variants: Mapping[str, Variant] = dataclasses.field(default_factory=dict)
    widths: tuple[float, ...] | None = None  # the only alphas the network comes in, if fixed
    # Builds the equivalent keras.applications model (for published weights and checks).
    keras_application: Callable[..., keras.Model] | None = None
    # The variant `tfmobile.convert --edgetpu` builds: the one every op of which maps.
    edgetpu_variant: Mapping[str, object] = dataclasses.field(default_factory=dict)
    task: str = "classification"  # or "detection"
    family: str | None = None  # a detector's head: "ssdlite" or "yolo"
    backbone: str | None = None  # a detector's zoo network
    default_input_size: int = 224

    def defaults(self) -> dict:
        return {k: variant.default for k, variant in self.variants.items()}


_REGISTRY: dict[str, ModelEntry] = {}


def keras_factory(application: str, *, ours_only=(), **fixed) -> Callable[..., keras.Model]:
    """Adapts the keras.applications constructor of that name to build()'s argument names; used
    to load the published weights and to check equivalence. `fixed` are arguments it always
    gets; `ours_only` names variants Keras does not have (a model using one has no Keras
    twin). Keras is imported when the model is made, not when the network registers."""

    def make(*, alpha, input_size, num_classes, include_top, weights, **kwargs):
        import keras

        for name in ours_only:
            if kwargs.pop(name, False):
                raise ValueError(f"keras.applications.{application} has no {name} variant: "
                                 "no published weights or Keras twin exist for it")

        return getattr(keras.applications, application)(
            input_shape=(input_size, input_size, 3), alpha=alpha, classes=num_classes,
            include_top=include_top, weights=weights, **fixed, **kwargs,
        )

    return make


def register(name, *, paper, variants=None, widths=None, keras_application=None,
             edgetpu_variant=None):
    def wrap(make_spec):
        _REGISTRY[name] = ModelEntry(
            name, make_spec, paper, dict(variants or {}), widths, keras_application,
            dict(edgetpu_variant or {}),
        )
        return make_spec

    return wrap


def all_variants() -> dict[str, Variant]:
    """Every variant name of the zoo, with its declaration (the first network's, where several
    networks share one: MobileNet V3 Large and Small)."""
    found: dict[str, Variant] = {}
    for registered in _REGISTRY.values():
        for key, variant in registered.variants.items():
            found.setdefault(key, variant)
    return found


TASKS = ("classification", "detection")


def available(task: str = "classification") -> list[str]:
    """The names of `task`'s networks ("classification", "detection" or "all") that `build`
    accepts, in registration order (families stay together)."""
    if task not in (*TASKS, "all"):
        raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}, all")
    return [name for name, e in _REGISTRY.items() if task in ("all", e.task)]


def register_detector(name: str, *, family: str, backbone: str, paper: str,
                      input_size: int) -> None:
    """A detector is a head on a registered backbone: it takes the backbone's widths and
    variants (ssdlite_mobilenet_v3_small, reduced_tail=True is the paper's V3-Small†)."""
    base = _REGISTRY[backbone]
    _REGISTRY[name] = dataclasses.replace(
        base, name=name, paper=paper, keras_application=None, task="detection", family=family,
        backbone=backbone, default_input_size=input_size)


def entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(available('all'))}"
                         ) from None


def check_alpha(entry: ModelEntry, alpha) -> float:
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, numbers.Real)
        or not math.isfinite(alpha)
        or alpha <= 0
    ):
        raise ValueError(f"alpha (width multiplier) must be a positive number, got {alpha!r}")
    if entry.widths is not None and float(alpha) not in entry.widths:
        raise ValueError(
            f"{entry.name} comes in widths {', '.join(f'{w:g}' for w in entry.widths)}; "
            f"got alpha={alpha!r}"
        )
    return float(alpha)


def check_variants(entry: ModelEntry, variant: dict) -> dict:
    unknown = sorted(set(variant) - set(entry.variants))
    if unknown:
        valid = ", ".join(entry.variants) or "none"
        raise ValueError(f"{entry.name} has no variant {unknown[0]!r}; its variants: {valid}")
    resolved = entry.defaults()
    for key, value in variant.items():
        allowed = entry.variants[key].choices
        if isinstance(value, bool) is not isinstance(allowed[0], bool) or value not in allowed:
            raise ValueError(
                f"{entry.name}: {key} must be one of {', '.join(map(str, allowed))}, got {value!r}"
            )
        resolved[key] = value
    return resolved


def check_positive_int(name: str, value, minimum: int, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}{why}, got {value!r}")
    return int(value)


def get_spec(name: str, alpha: float = 1.0, **variant) -> NetworkSpec:
    """The network's table at one width, as data (nothing is built)."""
    e = entry(name)
    return e.make_spec(check_alpha(e, alpha), **check_variants(e, variant))


def identity(
    name: str,
    *,
    alpha: float = 1.0,
    input_size: int | None = None,
    num_classes: int | None = None,
    weights: str | None = None,
    class_names=None,
    **variant,
) -> ModelIdentity:
    """The record of a zoo network built with these arguments, every variant resolved (so
    `shufflenet_v1` and `shufflenet_v1, groups=3` are one identity). Raises ValueError for the
    arguments `build` would refuse."""
    e = entry(name)
    resolved = check_variants(e, variant)
    input_size, num_classes = _sizes(e, input_size, num_classes)
    return ModelIdentity(
        name=name,
        alpha=check_alpha(e, alpha),
        input_size=input_size,
        num_classes=num_classes,
        variants=tuple(resolved.items()),
        weights=RANDOM_INIT if weights is None else str(weights),
        class_names=None if class_names is None else tuple(class_names),
    )


# Detectors default to COCO's 90 category ids, the width the papers' detection tables count.
DEFAULT_CLASSES = {"classification": 1000, "detection": 90}


def _sizes(e: ModelEntry, input_size, num_classes) -> tuple[int, int]:
    """input_size and num_classes checked, their defaults taken from the entry's task."""
    input_size = e.default_input_size if input_size is None else input_size
    num_classes = DEFAULT_CLASSES[e.task] if num_classes is None else num_classes
    return (check_positive_int("input_size", input_size, MIN_INPUT_SIZE,
                               f" ({e.name} downsamples 32x)"),
            check_positive_int("num_classes", num_classes, 1))


def build(
    name: str,
    *,
    alpha: float = 1.0,
    input_size: int | None = None,
    num_classes: int | None = None,
    include_top: bool = True,
    weights: str | None = None,
    classifier_activation: str | None = "softmax",
    **variant,
) -> keras.Model:
    """Builds a zoo network as a Keras functional model.

    Args:
      name: one of `available("all")`: a classifier, or a detector (`ssdlite_<backbone>`,
        `yolo_<backbone>`), whose training model returns its raw outputs
        (tfmobile.detection says how to deploy it).
      alpha: width multiplier (ShuffleNet V2: 0.5, 1, 1.5 or 2).
      input_size: side of the square RGB input (default 224; detectors 320); inputs are
        scaled to [-1, 1].
      num_classes: width of the classifier (default 1000), or a detector's object classes
        (default 90, COCO's category ids; the background is added).
      include_top: False stops at the last feature map (no pooling, no classifier).
      weights: None (random), "imagenet" (the published Keras weights, where they exist and
        can be downloaded) or the path of a `.weights.h5` file.
      classifier_activation: "softmax" or None for logits.
      **variant: network variants, e.g. minimalistic=True (MobileNet V3), groups=8
        (ShuffleNet V1).
    """
    from tfmobile.models import weights as weights_lib  # imports registry; avoid the cycle
    from tfmobile.models.assemble import assemble  # Keras

    e = entry(name)
    spec = get_spec(name, alpha, **variant)
    input_size, num_classes = _sizes(e, input_size, num_classes)
    if e.task == "detection":
        from tfmobile.detection import families

        return families.build(e, alpha=spec.alpha, input_size=input_size,
                              num_classes=num_classes, weights=weights,
                              **check_variants(e, variant))
    if classifier_activation not in (None, "softmax"):
        raise ValueError(
            f"classifier_activation must be 'softmax' or None, got {classifier_activation!r}"
        )
    weights_lib.check_weights_arg(e, weights, num_classes)
    try:
        model = assemble(spec, input_size, num_classes, include_top, classifier_activation)
    except ValueError as err:  # Keras: "Received filters=0" (int(32 * 0.01), or a difference)
        if "filters" not in str(err):
            raise
        raise ValueError(f"alpha (width multiplier) {alpha:g} is too small for {name}: a layer "
                         f"would have no channels ({' '.join(str(err).split())}); use a larger "
                         "alpha") from None
    if weights is not None:
        weights_lib.load(
            model,
            e,
            weights,
            alpha=spec.alpha,
            input_size=input_size,
            num_classes=num_classes,
            include_top=include_top,
            **check_variants(e, variant),
        )
    return model


def build_backbone(name: str, *, alpha: float = 1.0, input_size: int | None = None,
                   weights: str | None = None, **variant) -> keras.Model:
    """A zoo network without its classifier, returning its feature levels as a dict of tensors:
    {"C3": stride 8, "C4": stride 16, "C5": stride 32}, where the network's table says
    (`NetworkSpec.levels`; MobileNet V2 and V3 at SSDLite's attachment points). Takes build()'s
    arguments; "imagenet" weights load as for the classifier."""
    from tfmobile.models.assemble import levels

    model = build(name, alpha=alpha, input_size=input_size, weights=weights, include_top=False,
                  **variant)
    return levels(model, get_spec(name, alpha, **variant))

"""MobileNet V3 Large and Small (Howard et al. 2019, arXiv 1905.02244), as released."""

import dataclasses

from tfmobile.models.registry import Variant, keras_factory, register
from tfmobile.models.spec import Head, NetworkSpec, Tap, decode, halve_tail, make_divisible

SCHEMA = "block  k  exp  out   se    nl    s"  # the paper's columns: exp size, #out, SE, NL

# Table 1. The stem keeps 16 channels at every width; the last conv is 6x its input.
LARGE = decode(
    SCHEMA,
    [
        ("conv", 3, "-", 16,  "-",  "HS", 2, {"scale": "fixed"}),
        ("ir",   3, 16,  16,  "-",  "RE", 1),
        ("ir",   3, 64,  24,  "-",  "RE", 2),
        ("ir",   3, 72,  24,  "-",  "RE", 1),
        ("ir",   5, 72,  40,  0.25, "RE", 2),
        ("ir",   5, 120, 40,  0.25, "RE", 1),
        ("ir",   5, 120, 40,  0.25, "RE", 1),
        ("ir",   3, 240, 80,  "-",  "HS", 2),
        ("ir",   3, 200, 80,  "-",  "HS", 1),
        ("ir",   3, 184, 80,  "-",  "HS", 1),
        ("ir",   3, 184, 80,  "-",  "HS", 1),
        ("ir",   3, 480, 112, 0.25, "HS", 1),
        ("ir",   3, 672, 112, 0.25, "HS", 1),
        ("ir",   5, 672, 160, 0.25, "HS", 2),
        ("ir",   5, 960, 160, 0.25, "HS", 1),
        ("ir",   5, 960, 160, 0.25, "HS", 1),
        ("conv", 1, "-", 960, "-",  "HS", 1, {"scale": "input"}),
    ],
)

# Table 2. As released, the last 576-wide conv has no SE.
SMALL = decode(
    SCHEMA,
    [
        ("conv", 3, "-", 16,  "-",  "HS", 2, {"scale": "fixed"}),
        ("ir",   3, 16,  16,  0.25, "RE", 2),
        ("ir",   3, 72,  24,  "-",  "RE", 2),
        ("ir",   3, 88,  24,  "-",  "RE", 1),
        ("ir",   5, 96,  40,  0.25, "HS", 2),
        ("ir",   5, 240, 40,  0.25, "HS", 1),
        ("ir",   5, 240, 40,  0.25, "HS", 1),
        ("ir",   5, 120, 48,  0.25, "HS", 1),
        ("ir",   5, 144, 48,  0.25, "HS", 1),
        ("ir",   5, 288, 96,  0.25, "HS", 2),
        ("ir",   5, 576, 96,  0.25, "HS", 1),
        ("ir",   5, 576, 96,  0.25, "HS", 1),
        ("conv", 1, "-", 576, "-",  "HS", 1, {"scale": "input"}),
    ],
)


def minimalistic(blocks):
    """No SE, no hard-swish, no 5x5: the variant that maps well to GPUs, DSPs and Edge TPUs."""
    return tuple(
        dataclasses.replace(
            b, se=None, act="RE" if b.act == "HS" else b.act, kernel=min(b.kernel, 3)
        )
        for b in blocks
    )


# SSDLite's attachment points (§6.3): C4 is the expansion of the 13th (Large) / 9th (Small)
# bottleneck, the block that goes to stride 32 (672 / 288 channels); C5 the layer before pooling.
LEVELS = {"C3": "out@8", "C4": "expand@32", "C5": "out@32"}


def _spec(name, blocks, hidden, alpha, is_minimalistic, reduced_tail):
    if is_minimalistic:
        blocks = minimalistic(blocks)
    if reduced_tail:
        blocks = halve_tail(blocks, Tap.parse(LEVELS["C4"]).find(blocks))
    head = Head(hidden=hidden, hidden_act="RE" if is_minimalistic else "HS", dropout=0.2)
    return NetworkSpec(name, blocks, alpha, round_filters=make_divisible, head=head,
                       levels=LEVELS)


VARIANTS = {
    "minimalistic": Variant((False, True), "MobileNet V3: the variant without SE, hard-swish or "
                            "5x5 kernels (suits GPUs, DSPs and Edge TPUs)"),
    "reduced_tail": Variant((False, True), "MobileNet V3: the detection backbone of the paper's "
                            "Table 6 (†): channels halved from SSDLite's C4 tap to the end"),
}
# Google's Edge TPU releases of V3 are the minimalistic ones: no SE, no hard-swish, 3x3 only.
EDGETPU_VARIANT = {"minimalistic": True}
# Keras's V3 rescales [0, 255] inputs itself by default; the zoo takes [-1, 1] like V1/V2.
KERAS_FIXED = {"include_preprocessing": False}
OURS_ONLY = ("reduced_tail",)
PAPER = "Searching for MobileNetV3 (arXiv 1905.02244)"


@register(
    "mobilenet_v3_large", paper=PAPER, variants=VARIANTS, edgetpu_variant=EDGETPU_VARIANT,
    keras_application=keras_factory("MobileNetV3Large", ours_only=OURS_ONLY, **KERAS_FIXED),
)
def mobilenet_v3_large(alpha: float, minimalistic: bool = False,
                       reduced_tail: bool = False) -> NetworkSpec:
    return _spec("mobilenet_v3_large", LARGE, 1280, alpha, minimalistic, reduced_tail)


@register(
    "mobilenet_v3_small", paper=PAPER, variants=VARIANTS, edgetpu_variant=EDGETPU_VARIANT,
    keras_application=keras_factory("MobileNetV3Small", ours_only=OURS_ONLY, **KERAS_FIXED),
)
def mobilenet_v3_small(alpha: float, minimalistic: bool = False,
                       reduced_tail: bool = False) -> NetworkSpec:
    return _spec("mobilenet_v3_small", SMALL, 1024, alpha, minimalistic, reduced_tail)

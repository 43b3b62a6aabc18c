"""MobileNet V2 (Sandler et al. 2018, arXiv 1801.04381)."""

from tfmobile.models.registry import keras_factory, register
from tfmobile.models.spec import NetworkSpec, decode, make_divisible

# SSDLite's attachment points (§6.2): C4 is the expansion of layer 15, the first 160-wide
# block (576 channels, stride 16); C5 the last layer (1280).
LEVELS = {"C3": "out@8", "C4": "expand@32", "C5": "out@32"}

# Table 2: (t, c, n, s) bottleneck rows between a 3x3 stem and a 1x1 conv.
LAYERS = decode(
    "block  k  t    c     n  s",
    [
        ("conv", 3, "-", 32,   1, 2),
        ("ir",   3, 1,   16,   1, 1),
        ("ir",   3, 6,   24,   2, 2),
        ("ir",   3, 6,   32,   3, 2),
        ("ir",   3, 6,   64,   4, 2),
        ("ir",   3, 6,   96,   3, 1),
        ("ir",   3, 6,   160,  3, 2),
        ("ir",   3, 6,   320,  1, 1),
        ("conv", 1, "-", 1280, 1, 1, {"scale": "grow"}),  # not shrunk for alpha < 1
    ],
    act="RE6",
)


@register(
    "mobilenet_v2",
    paper="MobileNetV2: Inverted Residuals and Linear Bottlenecks (arXiv 1801.04381)",
    keras_application=keras_factory("MobileNetV2"),
)
def mobilenet_v2(alpha: float) -> NetworkSpec:
    return NetworkSpec(
        "mobilenet_v2", LAYERS, alpha, round_filters=lambda c: make_divisible(int(c)),
        levels=LEVELS,
    )

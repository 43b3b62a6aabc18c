"""MobileNet-EdgeTPU (Google 2019; the Pixel 4 Edge TPU network, searched for that accelerator)."""

from tfmobile.models.registry import register
from tfmobile.models.spec import Head, NetworkSpec, decode, make_divisible

# ReLU only and no SE (both costly on the Edge TPU); fused inverted bottlenecks while the maps
# are large, depthwise ones after. e8 expansions open each stage.
LAYERS = decode(
    "block      k  t    c     n  s",
    [
        ("conv",     3, "-", 32,   1, 2),
        ("fused_ir", 3, 1,   16,   1, 1),
        ("fused_ir", 3, 8,   32,   1, 2),
        ("fused_ir", 3, 4,   32,   3, 1),
        ("fused_ir", 3, 8,   48,   1, 2),
        ("fused_ir", 3, 4,   48,   3, 1),
        ("ir",       3, 8,   96,   1, 2),
        ("ir",       3, 4,   96,   3, 1),
        ("ir",       3, 8,   96,   1, 1, {"residual": False}),
        ("ir",       3, 4,   96,   3, 1),
        ("ir",       5, 8,   160,  1, 2),
        ("ir",       5, 4,   160,  3, 1),
        ("ir",       3, 8,   192,  1, 1),
        ("conv",     1, "-", 1280, 1, 1, {"scale": "grow"}),
    ],
    act="RE",
)


@register(
    "mobilenet_edgetpu",
    paper="MobileNet-EdgeTPU (Google AI blog, 2019; TF Model Garden mobilenet_edgetpu)",
)
def mobilenet_edgetpu(alpha: float) -> NetworkSpec:
    return NetworkSpec(
        "mobilenet_edgetpu", LAYERS, alpha, round_filters=make_divisible, head=Head(dropout=0.2)
    )

"""MobileNet V1 (Howard et al. 2017, arXiv 1704.04861)."""

from tfmobile.models.registry import keras_factory, register
from tfmobile.models.spec import Head, NetworkSpec, decode

# Table 1: a 3x3 stem, then depthwise-separable layers (dw 3x3 + pw 1x1, each BN + ReLU6).
LAYERS = decode(
    "block   k  c     n  s",
    [
        ("conv",  3, 32,   1, 2),
        ("dwsep", 3, 64,   1, 1),
        ("dwsep", 3, 128,  1, 2),
        ("dwsep", 3, 128,  1, 1),
        ("dwsep", 3, 256,  1, 2),
        ("dwsep", 3, 256,  1, 1),
        ("dwsep", 3, 512,  1, 2),
        ("dwsep", 3, 512,  5, 1),
        ("dwsep", 3, 1024, 1, 2),
        ("dwsep", 3, 1024, 1, 1),  # Table 1 prints s2; the network and its checkpoints use s1
    ],
    act="RE6",
)


@register(
    "mobilenet_v1",
    paper="MobileNets: Efficient CNNs for Mobile Vision Applications (arXiv 1704.04861)",
    keras_application=keras_factory("MobileNet"),
)
def mobilenet_v1(alpha: float) -> NetworkSpec:
    # The width multiplier truncates: int(c * alpha), as the released checkpoints were built.
    return NetworkSpec("mobilenet_v1", LAYERS, alpha, round_filters=int, head=Head(dropout=1e-3))

"""FD-MobileNet (Qin et al. 2018, arXiv 1802.03750): MobileNet with fast downsampling."""

from tfmobile.models.registry import register
from tfmobile.models.spec import Head, NetworkSpec, decode

# Table 1: 32x downsampling within the first 12 layers, so the costly wide layers run on a
# 7x7 map; depthwise-separable layers with plain ReLU.
LAYERS = decode(
    "block   k  c     n  s",
    [
        ("conv",  3, 32,   1, 2),
        ("dwsep", 3, 64,   1, 2),
        ("dwsep", 3, 128,  1, 2),
        ("dwsep", 3, 128,  1, 1),
        ("dwsep", 3, 256,  1, 2),
        ("dwsep", 3, 256,  1, 1),
        ("dwsep", 3, 512,  1, 2),
        ("dwsep", 3, 512,  4, 1),
        ("dwsep", 3, 1024, 1, 1),
    ],
    act="RE",
)


@register(
    "fd_mobilenet",
    paper="FD-MobileNet: Improved MobileNet with a Fast Downsampling Strategy (arXiv 1802.03750)",
)
def fd_mobilenet(alpha: float) -> NetworkSpec:
    # "Width multiplier scales every layer": int(c * width), the stem included.
    return NetworkSpec("fd_mobilenet", LAYERS, alpha, round_filters=int, head=Head(dropout=0.2))

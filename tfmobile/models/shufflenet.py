"""ShuffleNet V1 (Zhang et al. 2017, arXiv 1707.01083) and V2 (Ma et al. 2018, arXiv 1807.11164)."""

from tfmobile.models.registry import Variant, register
from tfmobile.models.spec import STAGE_OUTPUTS, NetworkSpec, decode

# ShuffleNet V1, Table 1: output channels of stages 2/3/4 for each number of groups g.
V1_STAGE_WIDTHS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}

# ShuffleNet V2, Table 5: stage 2/3/4 widths and conv5 per network width.
V2_WIDTHS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}


@register(
    "shufflenet_v1",
    paper="ShuffleNet: An Extremely Efficient CNN for Mobile Devices (arXiv 1707.01083)",
    variants={
        "groups": Variant((3, 1, 2, 4, 8), "ShuffleNet V1: groups of its 1x1 convolutions"),
        "split_groups": Variant((False, True), "ShuffleNet V1: each grouped conv as SPLIT, one "
                                "conv per group and CONCATENATION; same function and weights, "
                                "in ops the Edge TPU compiler maps"),
    },
    edgetpu_variant={"split_groups": True},
)
def shufflenet_v1(alpha: float, groups: int = 3, split_groups: bool = False) -> NetworkSpec:
    c2, c3, c4 = V1_STAGE_WIDTHS[groups]
    blocks = decode(
        "block        k  c   n  s",
        [
            ("conv",       3, 24,  1, 2, {"scale": "fixed"}),
            ("maxpool",    3, "-", 1, 2),
            # Stage 2's first 1x1 sees only the 24 stem channels: the paper leaves it ungrouped.
            ("shuffle_v1", 3, c2,  1, 2, {"input_groups": 1}),
            ("shuffle_v1", 3, c2,  3, 1),
            ("shuffle_v1", 3, c3,  8, 2),
            ("shuffle_v1", 3, c4,  4, 2),
        ],
        groups=groups,
        split_groups=split_groups,
    )
    # Widths stay multiples of 4g: the bottleneck (a quarter) must split into g groups.
    step = 4 * groups
    return NetworkSpec(
        "shufflenet_v1", blocks, alpha, round_filters=lambda c: max(step, round(c / step) * step)
    )


@register(
    "shufflenet_v2",
    paper="ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design "
    "(arXiv 1807.11164)",
    widths=tuple(V2_WIDTHS),
)
def shufflenet_v2(alpha: float) -> NetworkSpec:
    c2, c3, c4, c5 = V2_WIDTHS[alpha]
    blocks = decode(
        "block        k  c   n  s",
        [
            ("conv",       3, 24,  1, 2),
            ("maxpool",    3, "-", 1, 2),
            ("shuffle_v2", 3, c2,  4, 2),
            ("shuffle_v2", 3, c3,  8, 2),
            ("shuffle_v2", 3, c4,  4, 2),
            ("conv",       1, c5,  1, 1),
        ],
        scale="fixed",  # the width table already gives every width
    )
    # Detectors tap the stage outputs (YOLOv5-Lite's v5Lite-s: 116/232/464), not conv5.
    return NetworkSpec("shufflenet_v2", blocks, alpha, round_filters=int,
                       levels={**STAGE_OUTPUTS, "C5": "out@32/shuffle_v2"})

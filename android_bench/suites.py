"""Named model lists for `run --models @NAME`, and the paper comparisons they feed.

  @zoo                 every zoo network, and the stock keras.applications conversion of each
                       one that has an equivalent (issue: ours must never be slower)
  @fd_mobilenet_paper  FD-MobileNet 1x / 0.5x / 0.25x and the MobileNet V1, ShuffleNet V1 and
                       V2 widths of about the same cost (Qin et al. 2018, Table 3 and Section 4.4)

Entries are zoo entries (android_bench/models.py); their input size is the run's --input_size.
"""

from __future__ import annotations

import dataclasses


def zoo() -> list[str]:
    from tfmobile import artifacts, models

    return models.available() + [f"stock:{name}" for name in artifacts.stock_available()]


@dataclasses.dataclass(frozen=True)
class CostLevel:
    """One row group of the FD-MobileNet paper's speed comparison: networks of about equal
    MFLOPs at 224x224, and the speed-ups the paper measured on an ARM core (NCNN)."""

    mflops: int
    fd_mobilenet: str
    peers: dict  # label -> zoo entry
    paper_speedup: dict  # label -> FD-MobileNet's speed-up the paper reports


def mobilenet_v1_input(input_size: int) -> int:
    """MobileNet V1 0.25 at 12 MFLOPs needs 128 px where the others take 224: the same ratio
    at other input sizes, a multiple of 32."""
    return max(32, round(input_size * 128 / 224 / 32) * 32)


def fd_mobilenet_levels(input_size: int = 224) -> list[CostLevel]:
    return [
        CostLevel(140, "fd_mobilenet",
                  {"MobileNet V1 0.5x": "mobilenet_v1:alpha=0.5",
                   "ShuffleNet V1 1x (g=3)": "shufflenet_v1",
                   "ShuffleNet V2 1x": "shufflenet_v2"},
                  {"MobileNet V1 0.5x": 1.1, "ShuffleNet V1 1x (g=3)": 1.33}),
        CostLevel(40, "fd_mobilenet:alpha=0.5",
                  {"MobileNet V1 0.25x": "mobilenet_v1:alpha=0.25",
                   "ShuffleNet V1 0.5x (g=3)": "shufflenet_v1:alpha=0.5",
                   "ShuffleNet V2 0.5x": "shufflenet_v2:alpha=0.5"},
                  {"MobileNet V1 0.25x": 1.1, "ShuffleNet V1 0.5x (g=3)": 1.47}),
        CostLevel(12, "fd_mobilenet:alpha=0.25",
                  {f"MobileNet V1 0.25x at {mobilenet_v1_input(input_size)} px":
                       f"mobilenet_v1:alpha=0.25:input_size={mobilenet_v1_input(input_size)}",
                   "ShuffleNet V1 0.25x (g=3)": "shufflenet_v1:alpha=0.25"},
                  {f"MobileNet V1 0.25x at {mobilenet_v1_input(input_size)} px": 1.1,
                   "ShuffleNet V1 0.25x (g=3)": 1.82}),
    ]


def fd_mobilenet_paper(input_size: int = 224) -> list[str]:
    entries = []
    for level in fd_mobilenet_levels(input_size):
        entries += [level.fd_mobilenet, *level.peers.values()]
    return entries


SUITES = {"zoo": lambda input_size=224: zoo(), "fd_mobilenet_paper": fd_mobilenet_paper}

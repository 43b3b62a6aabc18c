"""Named model lists for `run --models @NAME`, and the paper comparisons they feed.

  @zoo                 every zoo network, and the stock keras.applications conversion of each
                       one that has an equivalent (issue: ours must never be slower)
  @fd_mobilenet_paper  FD-MobileNet 1x / 0.5x / 0.25x and the MobileNet V1, ShuffleNet V1 and
                       V2 widths of about the same cost (Qin et al. 2018, Table 3 and Section 4.4)
  @ssdlite_paper       SSDLite on MobileNet V1, V2, V3 Large, V3 Large reduced tail (†), V3
                       Small and V3 Small † (Howard et al. 2019, arXiv 1905.02244v5, Table 6),
                       at the paper's 320 px; the comparison sets their latency beside the
                       paper's published Pixel 1 figures

Entries are zoo entries (android_bench/models.py); their input size is the run's --input_size
when one is given, else the paper's (224 for the classifiers, 320 for SSDLite).
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


def fd_mobilenet_paper(input_size: int | None = None) -> list[str]:
    entries = []
    for level in fd_mobilenet_levels(input_size or 224):
        entries += [level.fd_mobilenet, *level.peers.values()]
    return entries


@dataclasses.dataclass(frozen=True)
class PublishedDetector:
    """One row of the MobileNet V3 paper's SSDLite table: the network as a zoo entry, and what
    the paper published for it. Published figures, not measurements: the latency is a Pixel 1's
    single large core (TFLite), the mAP COCO test-dev's mAP@[.5:.95]. The table does not say
    whether the models ran in float or int8; the checkpoints the paper points to are float."""

    label: str
    entry: str  # the zoo entry, without input_size (the run's, else the paper's 320)
    latency_ms: float
    map: float  # COCO mAP@[.5:.95], %
    input_size: int = 320


SSDLITE_SOURCE = "Howard et al. 2019, arXiv 1905.02244v5, Table 6 (Pixel 1, one large core)"
# Table 6's rows with a backbone in the zoo (its MnasNet rows have none; its MobileNet V2 0.35
# and 0.5 rows are left out, as the suite times the full widths). †: the reduced tail.
SSDLITE_PAPER = (
    PublishedDetector("MobileNet V1", "ssdlite_mobilenet_v1", 228, 22.2),
    PublishedDetector("MobileNet V2", "ssdlite_mobilenet_v2", 162, 22.1),
    PublishedDetector("MobileNet V3 Large", "ssdlite_mobilenet_v3_large", 137, 22.0),
    PublishedDetector("MobileNet V3 Large \u2020", "ssdlite_mobilenet_v3_large:reduced_tail", 119, 22.0),
    PublishedDetector("MobileNet V3 Small", "ssdlite_mobilenet_v3_small", 52, 16.0),
    PublishedDetector("MobileNet V3 Small \u2020", "ssdlite_mobilenet_v3_small:reduced_tail", 43, 16.1),
)
SSDLITE_REFERENCE = "MobileNet V2"  # the row the speed-ups are against, as the paper compares


def ssdlite_paper(input_size: int | None = None) -> list[str]:
    """Table 6's networks; at `input_size` when the run gives one, else the paper's 320 (the
    detectors' own default, so the entries carry no size)."""
    suffix = f":input_size={input_size}" if input_size else ""
    return [row.entry + suffix for row in SSDLITE_PAPER]


SUITES = {"zoo": lambda input_size=None: zoo(), "fd_mobilenet_paper": fd_mobilenet_paper,
          "ssdlite_paper": ssdlite_paper}

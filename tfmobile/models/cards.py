"""Published figures for the zoo's networks: what each paper (or the released checkpoint) reports.

Each card names one configuration and what was published for it. `tfmobile.summary --published`
and the tests compare the zoo against every card.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Card:
    model: str
    alpha: float = 1.0
    input_size: int = 224
    variants: tuple = ()  # (name, value) pairs
    # Figures in millions are kept as printed ("4.0" is not "4"): a match is judged to that precision.
    macs_m: str | None = None  # published MACs (or FLOPs), millions
    macs_computed_m: str | None = None  # the reference's own count by the papers' convention
    weights: int | str | None = None  # conv+dense weights: exact count, or millions as printed
    trainable: int | None = None  # trainable parameters (BN gamma/beta included)
    keras_params: int | None = None  # keras.applications count_params()
    top1: float | None = None  # ImageNet top-1, %
    # ShuffleNet V2's FLOPs were counted with the pooling windows included.
    counts_pooling: bool = False
    num_classes: int | None = None  # a detector's object classes (the background is added)
    tolerance: float = 0.01  # how far a figure printed in millions may be off
    source: str = ""

    @property
    def build_args(self) -> dict:
        classes = {} if self.num_classes is None else {"num_classes": self.num_classes}
        return dict(alpha=self.alpha, input_size=self.input_size, **classes, **dict(self.variants))

    @property
    def label(self) -> str:
        variant = "".join(f" {k}={v}" for k, v in self.variants)
        classes = "" if self.num_classes is None else f" {self.num_classes}+1 classes"
        return f"{self.model} {self.alpha:g} {self.input_size}{variant}{classes}"


V1 = "Howard et al. 2017, Table 6/7"
V2 = "Sandler et al. 2018, Table 6 / Keras"
V3 = "Howard et al. 2019, Tables 3/4 / Keras"

# SSDLite at 320 px, COCO test-dev mAP. Params are conv weights and biases (no batch norm), MAdds
# conv MACs, as the classifiers' cards count them; the issue asks for 2%. The MobileNet V3
# paper's rows reproduce with COCO's 90 category ids + background (91 class outputs); the
# MobileNet V2 paper's rows with COCO's 80 classes + background: with 90 its V2 row would be
# 4.45 M, 3.5% over.
V2_DET = "Sandler et al. 2018, Table 6 (SSDLite)"
V3_DET = "Howard et al. 2019 (v5), Table 6 (SSDLite)"
DETECTION_CARDS = (
    Card("ssdlite_mobilenet_v1", 1.0, 320, macs_m="1300", weights="5.1", num_classes=80, tolerance=0.02, source=V2_DET),
    Card("ssdlite_mobilenet_v2", 1.0, 320, macs_m="800", weights="4.3", num_classes=80, tolerance=0.02, source=V2_DET),
    Card("ssdlite_mobilenet_v3_large", 1.0, 320, macs_m="620", weights="4.97", num_classes=90, tolerance=0.02, source=V3_DET),
    Card("ssdlite_mobilenet_v3_large", 1.0, 320, variants=(("reduced_tail", True),), macs_m="510", weights="3.22", num_classes=90, tolerance=0.02, source=V3_DET),
    Card("ssdlite_mobilenet_v3_small", 1.0, 320, macs_m="210", weights="2.49", num_classes=90, tolerance=0.02, source=V3_DET),
    Card("ssdlite_mobilenet_v3_small", 1.0, 320, variants=(("reduced_tail", True),), macs_m="160", weights="1.77", num_classes=90, tolerance=0.02, source=V3_DET),
)

CARDS = (
    Card("mobilenet_v1", 1.0, 224, macs_m="569", macs_computed_m="568.74", keras_params=4_253_864, top1=70.6, source=V1),
    Card("mobilenet_v1", 0.75, 224, macs_m="325", macs_computed_m="325.40", keras_params=2_601_976, top1=68.4, source=V1),
    Card("mobilenet_v1", 0.5, 224, macs_m="149", macs_computed_m="149.50", keras_params=1_342_536, top1=63.7, source=V1),
    Card("mobilenet_v1", 0.25, 224, macs_m="41", macs_computed_m="41.03", keras_params=475_544, top1=50.6, source=V1),
    Card("mobilenet_v1", 1.0, 192, macs_m="418", macs_computed_m="418.12", keras_params=4_253_864, top1=69.1, source=V1),
    Card("mobilenet_v1", 1.0, 160, macs_m="290", macs_computed_m="290.68", keras_params=4_253_864, top1=67.2, source=V1),
    Card("mobilenet_v1", 1.0, 128, macs_m="186", macs_computed_m="186.40", keras_params=4_253_864, top1=64.4, source=V1),
    Card("mobilenet_v2", 1.0, macs_m="300", macs_computed_m="300.77", weights=3_470_760, keras_params=3_538_984, top1=72.0, source=V2),
    Card("mobilenet_v2", 1.4, macs_m="582", macs_computed_m="582.20", weights=6_060_840, keras_params=6_156_712, top1=75.0, source=V2),
    Card("mobilenet_v2", 0.35, macs_m="59", macs_computed_m="59.29", weights=1_663_048, keras_params=1_691_208, top1=60.3, source=V2),
    Card("mobilenet_v3_large", 1.0, macs_m="217", macs_computed_m="216.59", weights=5_458_632, keras_params=5_507_432, top1=75.2, source=V3),
    Card("mobilenet_v3_large", 0.75, macs_m="155", macs_computed_m="154.56", weights=3_974_440, top1=73.3, source=V3),
    Card("mobilenet_v3_large", 1.0, variants=(("minimalistic", True),), macs_m="209", macs_computed_m="209.14", weights=3_899_888, top1=72.3, source=V3),
    Card("mobilenet_v3_small", 1.0, macs_m="56", macs_computed_m="56.51", weights=2_530_744, keras_params=2_554_968, top1=67.4, source=V3),
    Card("mobilenet_v3_small", 0.75, macs_m="44", macs_computed_m="43.40", weights=2_032_192, top1=65.4, source=V3),
    Card("mobilenet_v3_small", 1.0, variants=(("minimalistic", True),), macs_m="52.29", macs_computed_m="52.29", weights=2_032_624, top1=61.9, source=V3),
    Card("fd_mobilenet", 1.0, macs_m="144", macs_computed_m="144.49", trainable=2_901_288, top1=65.3, source="Qin et al. 2018, Table 3"),
    Card("fd_mobilenet", 0.5, macs_m="40", macs_computed_m="40.13", trainable=993_928, top1=56.3, source="Qin et al. 2018, Table 3"),
    Card("fd_mobilenet", 0.25, macs_m="12", macs_computed_m="12.04", trainable=383_160, top1=45.1, source="Qin et al. 2018, Table 3"),
    *(
        Card("shufflenet_v1", 1.0, variants=(("groups", g),), macs_m=paper, macs_computed_m=computed, top1=top1,
             source="Zhang et al. 2017, Table 2")
        for g, paper, computed, top1 in (
            (1, "143", "143.1", 66.4), (2, "140", "140.8", 67.3), (3, "137", "137.5", 67.4),
            (4, "133", "134.3", 67.2), (8, "137", "138.4", 67.6),
        )
    ),
    *(
        Card("shufflenet_v2", alpha, macs_m=flops, weights=weights_m, counts_pooling=True, top1=top1,
             source="Ma et al. 2018, Table 5")
        for alpha, flops, weights_m, top1 in (
            (0.5, "41", "1.4", 60.3), (1.0, "146", "2.3", 69.4), (1.5, "299", "3.5", 72.6),
            (2.0, "591", "7.4", 74.9),
        )
    ),
    Card("mobilenet_edgetpu", 1.0, macs_m="990", weights="4.0", top1=75.6, source="Google AI blog 2019 (8-bit)"),
    *DETECTION_CARDS,
)


def rounds_to(value: float, printed: str) -> bool:
    """Whether `value` rounds to a figure printed as `printed` ("4.0": to one decimal)."""
    decimals = len(printed.partition(".")[2])
    return abs(value - float(printed)) <= 0.5 * 10**-decimals + 1e-12


def matches(value: float, printed: str, tolerance: float = 0.01) -> bool:
    """Within `tolerance` (1%) of a printed figure, or equal to it at the precision it is printed
    with."""
    return abs(value / float(printed) - 1) <= tolerance or rounds_to(value, printed)


def check_card(card) -> list[dict]:
    """Each figure the card publishes next to ours. Exact counts must be equal; figures in
    millions must match within 1% or to the precision they are printed with. Where the
    reference gives its own computed MAC count beside the paper's, that count is the one to
    reproduce and the paper's rounded figure is shown for information ("info")."""
    from tfmobile.profile import summarize

    s = summarize(card.model, **card.build_args)
    rows = []

    def add(figure, ours, published, verdict):
        deviation = ours / float(published) - 1
        rows.append(dict(model=card.label, figure=figure, published=published, ours=ours,
                         deviation=deviation, verdict=verdict))

    macs_m = s["macs"] / 1e6
    if card.macs_computed_m is not None:
        add("MACs, computed (M)", macs_m, card.macs_computed_m,
            "yes" if rounds_to(macs_m, card.macs_computed_m) else "NO")
    if card.macs_m is not None:
        if card.counts_pooling:
            flops_m = macs_m + s["pool_ops"] / 1e6
            add("FLOPs incl. pooling (M)", flops_m, card.macs_m,
                "yes" if matches(flops_m, card.macs_m) else "NO")
        elif card.macs_computed_m is not None:
            add("MACs, paper (M)", macs_m, card.macs_m, "info")
        else:
            add("MACs (M)", macs_m, card.macs_m,
                "yes" if matches(macs_m, card.macs_m, card.tolerance) else "NO")
    if isinstance(card.weights, int):
        add("conv+dense weights", s["weights"], card.weights,
            "yes" if s["weights"] == card.weights else "NO")
    elif card.weights is not None:
        ours_m = s["weights"] / 1e6
        add("weights (M)", ours_m, card.weights,
            "yes" if matches(ours_m, card.weights, card.tolerance) else "NO")
    if card.trainable is not None:
        add("trainable params", s["trainable_params"], card.trainable,
            "yes" if s["trainable_params"] == card.trainable else "NO")
    if card.keras_params is not None:
        add("Keras params", s["params"], card.keras_params,
            "yes" if s["params"] == card.keras_params else "NO")
    return rows

"""Architecture as data: layer tables, written as the papers print them, decoded into typed rows.

A table is a schema line naming its columns and one tuple per row, e.g. MobileNet V2's
`"block k t c n s"` with rows like `("ir", 3, 6, 24, 2, 2)`. `decode` turns it into one
`BlockSpec` per block (a row with n > 1 becomes n blocks; only the first takes the stride), with
every width still at width multiplier 1.0. `tfmobile.models.assemble` resolves the widths for a
given alpha and hands each block to the one builder for its type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

# Column names as the papers print them -> BlockSpec fields.
COLUMNS = {
    "block": "block",
    "k": "kernel",
    "s": "stride",
    "c": "filters",
    "out": "filters",
    "n": "repeat",
    "t": "expand_ratio",  # MobileNet V2: expansion factor against the block's input
    "exp": "expand",  # MobileNet V3: absolute expansion width
    "se": "se",
    "nl": "act",
    "g": "groups",
}

# The non-linearities under the names the papers use.
ACTIVATIONS = ("RE", "RE6", "HS", None)
BLOCK_TYPES = ("conv", "dwsep", "ir", "fused_ir", "shuffle_v1", "shuffle_v2", "maxpool")
# How a row's width follows the width multiplier alpha.
SCALINGS = (
    "alpha",  # width(c * alpha): the default
    "fixed",  # c whatever alpha is (MobileNet V3's 16-wide stem)
    "grow",  # width(c * alpha) only when alpha > 1 (the 1280-wide heads)
    "input",  # c / in_filters times the actual input width (MobileNet V3's 6x head conv)
)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One block at width multiplier 1.0."""

    block: str
    filters: int | None = None  # output channels
    in_filters: int | None = None  # input channels (filled in by decode)
    kernel: int = 3
    stride: int = 1
    expand: int | None = None  # expansion width; the block uses expand / in_filters of its input
    se: float | None = None  # squeeze-excite reduction against the expanded width
    act: str | None = "RE"
    residual: bool = True  # add the input back where shapes allow
    groups: int = 1
    input_groups: int | None = None  # groups of the block's first 1x1 conv, if not `groups`
    split_groups: bool = False  # grouped convs as SPLIT + one conv per group + CONCATENATION
    scale: str = "alpha"

    def __post_init__(self):
        if self.block not in BLOCK_TYPES:
            raise ValueError(f"unknown block type {self.block!r}; valid: {', '.join(BLOCK_TYPES)}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.act!r}; valid: RE, RE6, HS or '-'")
        if self.scale not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scale!r}; valid: {', '.join(SCALINGS)}")


def decode(schema: str, rows: Iterable[tuple], **defaults) -> tuple[BlockSpec, ...]:
    """Decodes a table into one BlockSpec per block.

    `schema` names the columns (see COLUMNS); a row may end with a dict of further fields for the
    odd cell the schema has no column for. "-" in a cell means "none". `defaults` fill the
    fields no column gives (a network's one activation, say).
    """
    columns = schema.split()
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown column(s) {unknown}; valid: {', '.join(COLUMNS)}")
    blocks: list[BlockSpec] = []
    in_filters = None
    for row in rows:
        extra = row[-1] if row and isinstance(row[-1], dict) else {}
        cells = row[:-1] if extra else row
        if len(cells) != len(columns):
            raise ValueError(f"row {row!r} has {len(cells)} cells for {len(columns)} columns")
        fields = dict(defaults)
        fields.update(
            {COLUMNS[c]: (None if v == "-" else v) for c, v in zip(columns, cells, strict=True)}
        )
        fields.update(extra)
        repeat = fields.pop("repeat", 1) or 1
        ratio = fields.pop("expand_ratio", None)
        if fields.get("filters") is None:  # pooling keeps its input width
            fields["filters"] = in_filters
        for i in range(repeat):
            block = dict(fields, in_filters=in_filters, stride=fields.get("stride", 1) if i == 0 else 1)
            if ratio is not None:
                block["expand"] = round(ratio * in_filters)
            blocks.append(BlockSpec(**block))
            in_filters = block["filters"]
    return tuple(blocks)


@dataclasses.dataclass(frozen=True)
class Head:
    """What follows the last block when include_top is set: pool, [hidden], dropout, classifier."""

    hidden: int | None = None  # MobileNet V3's 1x1 conv on the pooled features (bias, no BN)
    hidden_act: str | None = None
    hidden_scale: str = "grow"
    dropout: float = 0.0


# Where a detector taps the network: the last block's output at strides 8, 16 and 32, unless
# the network's paper attaches elsewhere (see Tap).
STAGE_OUTPUTS = {"C3": "out@8", "C4": "out@16", "C5": "out@32"}


@dataclasses.dataclass(frozen=True)
class Tap:
    """A feature level, written `where@stride[/block]` in a network's `levels`:

    - `out@16`: the output of the last block at output stride 16;
    - `expand@32`: the expansion layer of the block that takes the network to stride 32. Its
      output is still at stride 16: this is SSDLite's C4 in the MobileNet V2 and V3 papers (the
      expansion of V2's layer 15, of V3 Large's 13th and V3 Small's 9th bottleneck);
    - `out@32/shuffle_v2`: the last block of that type at stride 32 (ShuffleNet V2's stage 4,
      not its 1x1 conv5).
    """

    where: str
    stride: int
    block: str | None = None

    @classmethod
    def parse(cls, text: str) -> Tap:
        where, _, rest = text.partition("@")
        stride, _, block = rest.partition("/")
        if where not in ("out", "expand") or not stride.isdigit():
            raise ValueError(f"feature level {text!r}: write out@STRIDE or expand@STRIDE[/block]")
        return cls(where, int(stride), block or None)

    def find(self, blocks: tuple[BlockSpec, ...]) -> int:
        """The index of the block this tap reads."""
        strides, total = [], 1
        for b in blocks:
            total *= b.stride
            strides.append(total)
        candidates = [i for i, (b, s) in enumerate(zip(blocks, strides, strict=True))
                      if s == self.stride and (self.block is None or b.block == self.block)]
        if self.where == "expand":
            candidates = [i for i in candidates if blocks[i].stride > 1][:1]
        if not candidates:
            raise ValueError(f"no block for feature level {self}")
        index = candidates[0] if self.where == "expand" else candidates[-1]
        if self.where == "expand" and blocks[index].expand in (None, blocks[index].in_filters):
            raise ValueError(f"feature level {self}: block {index} has no expansion layer")
        return index

    def __str__(self):
        return f"{self.where}@{self.stride}" + (f"/{self.block}" if self.block else "")


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A whole network at one width: its blocks, how widths round, its head, and where detectors
    tap its feature maps (`levels`: name -> Tap text, at strides 8, 16 and 32)."""

    name: str
    blocks: tuple[BlockSpec, ...]
    alpha: float
    round_filters: Callable[[float], int]  # rounds an alpha-scaled channel count
    head: Head = Head()
    round_expand: Callable[[float], int] = None  # rounds expansion and SE widths
    levels: dict = dataclasses.field(default_factory=lambda: dict(STAGE_OUTPUTS))

    def __post_init__(self):
        if self.round_expand is None:
            object.__setattr__(self, "round_expand", make_divisible)

    def taps(self) -> dict[str, Tap]:
        return {name: Tap.parse(text) for name, text in self.levels.items()}


def halve_tail(blocks: tuple[BlockSpec, ...], start: int) -> tuple[BlockSpec, ...]:
    """The detection variant of the MobileNet V3 paper (Table 6, marked "†"): every block from
    `start` on has half its output channels. Expansions are ratios of a block's input, so they
    halve with it, and so does the last conv, which is 6x its input: 160 -> 80 and 960 -> 480
    in V3 Large, as TF slim's `_reduce_consecutive_layers(V3_LARGE, 13, 16)` builds it."""
    return blocks[:start] + tuple(
        b if b.scale == "input" else dataclasses.replace(b, filters=b.filters // 2)
        for b in blocks[start:])


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds to the nearest multiple of divisor, never going below 90% of value.

    The rule every released MobileNet (V2, V3, EdgeTPU) uses, so widths match their checkpoints.
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded

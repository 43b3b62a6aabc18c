"""The table decoder and the width rules."""

import pytest

from tfmobile.models import get_spec
from tfmobile.models.spec import BlockSpec, decode, make_divisible


def test_decode_expands_repeats_and_keeps_the_stride_on_the_first():
    blocks = decode(
        "block k t c n s",
        [("conv", 3, "-", 32, 1, 2), ("ir", 3, 6, 24, 3, 2)],
        act="RE6",
    )
    assert [b.block for b in blocks] == ["conv", "ir", "ir", "ir"]
    assert [b.stride for b in blocks] == [2, 2, 1, 1]
    # Expansion is relative to each block's own input: 6 x 32 first, then 6 x 24.
    assert [(b.in_filters, b.expand) for b in blocks[1:]] == [(32, 192), (24, 144), (24, 144)]
    assert all(b.act == "RE6" for b in blocks)
    assert blocks[0].expand is None


def test_decode_reads_absolute_expansion_widths_and_row_overrides():
    blocks = decode(
        "block k exp out se nl s",
        [
            ("conv", 3, "-", 16, "-", "HS", 2, {"scale": "fixed"}),
            ("ir", 5, 72, 40, 0.25, "RE", 2),
        ],
    )
    assert blocks[0].scale == "fixed" and blocks[0].se is None
    assert blocks[1] == BlockSpec("ir", 40, 16, kernel=5, stride=2, expand=72, se=0.25, act="RE")


def test_pooling_rows_keep_their_input_width():
    blocks = decode("block k c n s", [("conv", 3, 24, 1, 2), ("maxpool", 3, "-", 1, 2)])
    assert blocks[1].filters == 24


@pytest.mark.parametrize(
    "schema,rows,message",
    [
        ("block k cc", [("conv", 3, 8)], "unknown column"),
        ("block k c", [("conv", 3)], "2 cells for 3 columns"),
        ("block k c", [("deconv", 3, 8)], "unknown block type"),
        ("block k c nl", [("conv", 3, 8, "GELU")], "unknown activation"),
    ],
)
def test_decode_rejects_malformed_tables(schema, rows, message):
    with pytest.raises(ValueError, match=message):
        decode(schema, rows)


@pytest.mark.parametrize(
    "value,expected", [(32 * 0.35, 16), (16 * 0.75, 16), (72, 72), (147.2, 144), (5.6, 8), (1792, 1792)]
)
def test_make_divisible_rounds_to_eight_without_losing_a_tenth(value, expected):
    assert make_divisible(value) == expected


def test_specs_are_data():
    spec = get_spec("mobilenet_v3_large", alpha=0.75, minimalistic=True)
    assert spec.alpha == 0.75
    assert all(b.se is None and b.act != "HS" and b.kernel <= 3 for b in spec.blocks)
    assert get_spec("mobilenet_v2").blocks[-1].scale == "grow"

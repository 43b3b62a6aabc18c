"""The zoo against every figure in ../shared/reference/architectures.md (tfmobile/models/cards.py)."""

import functools

import pytest

from tfmobile.models.cards import CARDS, matches, rounds_to
from tfmobile.models.cards import check_card as _check_card

check_card = functools.lru_cache(maxsize=None)(_check_card)  # each card built once per run

# The one published figure the zoo does not reproduce, and why: MobileNet-EdgeTPU's MACs match
# to 0.07% (which pins every layer's shape), yet its conv+dense weights come to 4.05 M against
# a published "4.0 M". Any other row that stops matching fails the test below.
KNOWN_DEVIATIONS = {("mobilenet_edgetpu 1 224", "weights (M)")}


@pytest.mark.parametrize("card", CARDS, ids=lambda c: c.label)
def test_published_figures_are_reproduced(card):
    rows = check_card(card)
    assert rows, "every card publishes something to check"
    for row in rows:
        if row["verdict"] == "info":
            continue
        key = (row["model"], row["figure"])
        expected = "NO" if key in KNOWN_DEVIATIONS else "yes"
        assert row["verdict"] == expected, row
        if key in KNOWN_DEVIATIONS:
            assert abs(row["deviation"]) < 0.015, row


def test_mac_figures_are_within_their_tolerance_of_the_reference():
    # 1% for the classifiers; 2% for the detectors' Table 6 rows, which print 2 digits.
    for card in CARDS:
        rows = {r["figure"]: r for r in check_card(card)}
        reference = rows.get("MACs, computed (M)") or rows.get("MACs (M)") or rows["FLOPs incl. pooling (M)"]
        assert abs(reference["deviation"]) <= card.tolerance, reference


def test_printed_precision_is_respected():
    assert rounds_to(4.04, "4.0") and not rounds_to(4.06, "4.0")
    assert rounds_to(43.404, "43.40") and not rounds_to(43.41, "43.40")
    assert matches(145.81, "146") and not matches(40.48, "41")

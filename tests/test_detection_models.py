"""Detectors built from the zoo's tables: feature levels where the papers attach them, SSDLite's
anchors and outputs, the registry's detector names, and the MobileNet papers' Table 6 counts."""

import pytest

from tfmobile import models
from tfmobile.models.spec import Tap


def level_shapes(name, input_size=320, **variant):
    model = models.build_backbone(name, input_size=input_size, **variant)
    return {k: tuple(v.shape[1:]) for k, v in model.output.items()}


@pytest.mark.parametrize("name,variant,c3,c4,c5", [
    # The papers' attachment points: V2 layer 15's expansion (576) and layer 19 (1280); V3
    # Large / Small: the 13th / 9th bottleneck's expansion (672 / 288) and the layer before
    # pooling (960 / 576; halved in the reduced tail, †); V1 conv_pw_11 / conv_pw_13.
    ("mobilenet_v2", {}, 32, 576, 1280),
    ("mobilenet_v3_large", {}, 40, 672, 960),
    ("mobilenet_v3_large", {"reduced_tail": True}, 40, 672, 480),
    ("mobilenet_v3_small", {}, 24, 288, 576),
    ("mobilenet_v3_small", {"reduced_tail": True}, 24, 288, 288),
    ("mobilenet_v1", {}, 256, 512, 1024),
    # Stage outputs: ShuffleNet V2's stages 2-4 (116/232/464, YOLOv5-Lite's taps, not conv5).
    ("shufflenet_v2", {}, 116, 232, 464),
    ("fd_mobilenet", {}, 128, 256, 1024),
    ("shufflenet_v1", {}, 240, 480, 960),
])
def test_feature_levels_are_where_the_papers_attach(name, variant, c3, c4, c5):
    shapes = level_shapes(name, **variant)
    assert shapes == {"C3": (40, 40, c3), "C4": (20, 20, c4), "C5": (10, 10, c5)}


def test_every_backbone_has_levels_at_strides_8_16_32():
    for name in models.available():
        shapes = level_shapes(name, input_size=64)
        assert [s[:2] for s in shapes.values()] == [(8, 8), (4, 4), (2, 2)], name


def test_the_reduced_tail_halves_channels_from_c4_on_and_nothing_before():
    full = models.get_spec("mobilenet_v3_large").blocks
    reduced = models.get_spec("mobilenet_v3_large", reduced_tail=True).blocks
    start = Tap.parse("expand@32").find(full)
    assert start == 13  # the 13th bottleneck (row 0 is the stem)
    assert reduced[:start] == full[:start]
    assert [b.filters for b in reduced[start:-1]] == [80, 80, 80]
    assert reduced[-1] == full[-1]  # the last conv is 6x its (halved) input


@pytest.mark.parametrize("text,error", [("mid@16", "write out@STRIDE"), ("out@x", "write out@")])
def test_a_bad_level_is_refused(text, error):
    with pytest.raises(ValueError, match=error):
        Tap.parse(text)


def test_a_level_the_table_cannot_give_is_refused():
    with pytest.raises(ValueError, match="no expansion layer"):
        Tap.parse("expand@32").find(models.get_spec("mobilenet_v1").blocks)


def test_detectors_are_registered_on_every_backbone():
    detectors = models.available("detection")
    for backbone in models.available():
        assert f"ssdlite_{backbone}" in detectors and f"yolo_{backbone}" in detectors
    assert not set(detectors) & set(models.available())  # classifiers stay their own list
    identity = models.identity("ssdlite_mobilenet_v3_small")
    assert (identity.input_size, identity.num_classes) == (320, 90)
    with pytest.raises(ValueError, match="comes in widths"):
        models.identity("yolo_shufflenet_v2", alpha=0.3)


@pytest.mark.parametrize("input_size,anchors", [(300, 1917), (320, 2034)])
def test_ssdlite_outputs_one_row_per_anchor(input_size, anchors):
    from tfmobile.detection import families

    model = models.build("ssdlite_mobilenet_v2", input_size=input_size, num_classes=5)
    assert {k: tuple(v.shape[1:]) for k, v in model.output.items()} == {
        "box_encodings": (anchors, 4), "class_logits": (anchors, 6)}
    family = families.of(model)
    assert family.anchors(model).shape == (anchors, 4)
    deploy = family.deploy(model)
    assert sorted(deploy.output) == ["box_encodings", "class_scores"]


# Table 6's params and MAdds: tests/test_published_figures.py checks every card, these included.

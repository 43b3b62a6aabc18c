"""Every network and variant builds; arguments are validated; weights load from a file."""

import numpy as np
import pytest

from tfmobile import models

ALL_VARIANTS = [(name, {}) for name in models.available()] + [
    ("mobilenet_v3_large", {"minimalistic": True}),
    ("mobilenet_v3_small", {"minimalistic": True}),
    *[("shufflenet_v1", {"groups": g}) for g in (1, 2, 4, 8)],
    ("shufflenet_v1", {"split_groups": True}),
    *[("shufflenet_v2", {"alpha": a}) for a in (0.5, 1.5, 2.0)],
]


def test_available_lists_the_zoo():
    assert models.available() == [
        "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
        "fd_mobilenet", "shufflenet_v1", "shufflenet_v2", "mobilenet_edgetpu",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name,args", ALL_VARIANTS, ids=lambda v: str(v))
def test_every_variant_builds_and_classifies(name, args, photo_batch):
    model = models.build(name, input_size=128, num_classes=7, **args)
    probabilities = model.predict(photo_batch(128)[:2], verbose=0)
    assert probabilities.shape == (2, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    features = models.build(name, input_size=128, include_top=False, **args)
    assert features.output_shape[1:3] == (4, 4)  # 32x downsampling


@pytest.mark.parametrize(
    "call,message",
    [
        (dict(name="mobilenet_v4"), "unknown model 'mobilenet_v4'; choose one of: mobilenet_v1,"),
        (dict(name="mobilenet_v1", alpha=0), "alpha .* positive number, got 0"),
        (dict(name="mobilenet_v1", alpha=-0.5), "positive number"),
        (dict(name="mobilenet_v1", alpha=float("nan")), "positive number"),
        (dict(name="shufflenet_v2", alpha=0.75), "comes in widths 0.5, 1, 1.5, 2"),
        (dict(name="mobilenet_v2", input_size=31), "input_size must be an integer of at least 32"),
        (dict(name="mobilenet_v2", input_size=224.0), "input_size must be an integer"),
        (dict(name="mobilenet_v2", num_classes=0), "num_classes must be an integer of at least 1"),
        (dict(name="shufflenet_v1", groups=5), "groups must be one of 3, 1, 2, 4, 8, got 5"),
        (dict(name="mobilenet_v3_small", minimalistic=1), "minimalistic must be one of False, True"),
        (dict(name="mobilenet_v2", minimalistic=True), "no variant 'minimalistic'; its variants: none"),
        (dict(name="mobilenet_v3_large", groups=2), "its variants: minimalistic"),
        (dict(name="fd_mobilenet", weights="imagenet"), "no published ImageNet weights"),
        (dict(name="mobilenet_v2", weights="imagenet", num_classes=10), "needs num_classes=1000"),
        (dict(name="mobilenet_v2", weights="/nonexistent/w.weights.h5"), "does not exist"),
        (dict(name="mobilenet_v2", classifier_activation="sigmoid"), "'softmax' or None"),
    ],
)
def test_bad_arguments_name_the_valid_choices(call, message):
    with pytest.raises(ValueError, match=message):
        models.build(**call)


def test_weights_file_round_trip(tmp_path, photo_batch):
    trained = models.build("fd_mobilenet", alpha=0.25, input_size=96, num_classes=5)
    path = tmp_path / "fd.weights.h5"
    trained.save_weights(path)
    loaded = models.build("fd_mobilenet", alpha=0.25, input_size=96, num_classes=5, weights=str(path))
    images = photo_batch(96)
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), trained.predict(images, verbose=0))


def test_channel_shuffle_interleaves_the_groups():
    from tfmobile.models.blocks import ChannelShuffle

    x = np.arange(2 * 2 * 6, dtype=np.float32).reshape(1, 2, 2, 6)
    y = np.asarray(ChannelShuffle(3)(x))
    # Channels [a0 a1 | b0 b1 | c0 c1] -> [a0 b0 c0 a1 b1 c1] at every pixel.
    np.testing.assert_array_equal(y[0, 0, 0], [0, 2, 4, 1, 3, 5])
    np.testing.assert_array_equal(y[0, 1, 1], x[0, 1, 1][[0, 2, 4, 1, 3, 5]])

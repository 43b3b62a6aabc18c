"""MobileNet V1/V2/V3 against keras.applications: same parameters, and ported weights give the
same outputs on real photographs."""

import keras
import numpy as np
import pytest

from tfmobile import models

from helpers import randomize

# Every (model, alpha, input size, variants) the reference figures list for these networks.
KERAS_ROWS = [
    ("mobilenet_v1", 1.0, 224, {}),
    ("mobilenet_v1", 0.75, 224, {}),
    ("mobilenet_v1", 0.5, 224, {}),
    ("mobilenet_v1", 0.25, 224, {}),
    ("mobilenet_v1", 1.0, 128, {}),
    ("mobilenet_v2", 1.0, 224, {}),
    ("mobilenet_v2", 1.4, 224, {}),
    ("mobilenet_v2", 0.35, 224, {}),
    ("mobilenet_v3_large", 1.0, 224, {}),
    ("mobilenet_v3_large", 0.75, 224, {}),
    ("mobilenet_v3_large", 1.0, 224, {"minimalistic": True}),
    ("mobilenet_v3_small", 1.0, 224, {}),
    ("mobilenet_v3_small", 0.75, 224, {}),
    ("mobilenet_v3_small", 1.0, 224, {"minimalistic": True}),
]


def keras_model(name, alpha, input_size, variants, num_classes=1000):
    return models.entry(name).keras_application(
        alpha=alpha, input_size=input_size, num_classes=num_classes, include_top=True,
        weights=None, classifier_activation=None, **variants,
    )


@pytest.mark.parametrize("name,alpha,size,variants", KERAS_ROWS)
def test_parameter_count_equals_keras_applications(name, alpha, size, variants):
    ours = models.build(name, alpha=alpha, input_size=size, **variants)
    theirs = keras_model(name, alpha, size, variants)
    assert ours.count_params() == theirs.count_params()


@pytest.mark.parametrize(
    "name,alpha,variants",
    [
        ("mobilenet_v1", 0.5, {}),
        ("mobilenet_v2", 0.35, {}),
        ("mobilenet_v2", 1.0, {}),
        ("mobilenet_v3_large", 0.75, {}),
        ("mobilenet_v3_large", 1.0, {"minimalistic": True}),
        ("mobilenet_v3_small", 1.0, {}),
    ],
)
def test_ported_weights_give_the_same_outputs(name, alpha, variants, photo_batch):
    size = 160
    theirs = keras_model(name, alpha, size, variants)
    randomize(theirs)
    ours = models.build(name, alpha=alpha, input_size=size, classifier_activation=None, **variants)
    models.port_weights(theirs, ours)
    images = photo_batch(size)
    expected = theirs.predict(images, verbose=0)
    got = ours.predict(images, verbose=0)
    assert np.abs(expected).max() > 0.1  # the outputs carry signal, not all zeros
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_port_refuses_a_different_structure():
    src = keras_model("mobilenet_v2", 1.0, 96, {})
    dst = models.build("mobilenet_v2", alpha=0.5, input_size=96)
    before = [w.copy() for w in dst.get_weights()]
    with pytest.raises(ValueError, match="weighted layer .* differs"):
        models.port_weights(src, dst)
    # Nothing was written into the destination.
    assert all(np.array_equal(a, b) for a, b in zip(before, dst.get_weights()))
    with pytest.raises(ValueError, match="weighted layers"):
        models.port_weights(src, models.build("mobilenet_v1", input_size=96))


def test_imagenet_weights_load_or_fail_clearly(photo_batch):
    """The published weights load where Keras can download them; elsewhere (this sandbox has no
    route to their host) the error names the model and the way out."""
    try:
        ours = models.build("mobilenet_v2", alpha=0.35, input_size=96, weights="imagenet")
    except RuntimeError as err:
        message = str(err)
        assert "mobilenet_v2" in message and "alpha 0.35" in message
        assert "weights=PATH" in message
        return
    theirs = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3))
    images = photo_batch(96)
    np.testing.assert_allclose(ours.predict(images, verbose=0), theirs.predict(images, verbose=0),
                               atol=1e-4)

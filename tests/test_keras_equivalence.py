"""MobileNet V1/V2/V3 against keras.applications: same parameters, and ported weights give the
same outputs on real photographs."""

import dataclasses
import os
import re
import subprocess
import sys

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


@pytest.mark.slow
@pytest.mark.parametrize("name,alpha,size,variants", KERAS_ROWS)
def test_parameter_count_equals_keras_applications(name, alpha, size, variants):
    ours = models.build(name, alpha=alpha, input_size=size, **variants)
    theirs = keras_model(name, alpha, size, variants)
    assert ours.count_params() == theirs.count_params()


@pytest.mark.slow
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
    assert all(np.array_equal(a, b) for a, b in zip(before, dst.get_weights(), strict=True))
    with pytest.raises(ValueError, match="weighted layers"):
        models.port_weights(src, models.build("mobilenet_v1", input_size=96))


# Builds ours with weights="imagenet" in a process whose KERAS_HOME is given: Keras looks
# there for the published file before downloading it.
LOAD_IMAGENET = """
import sys
import numpy as np
from tfmobile import models
ours = models.build("mobilenet_v2", alpha=0.35, input_size=96, weights="imagenet")
np.save(sys.argv[1], ours.predict(np.load(sys.argv[2]), verbose=0))
"""


def run_with_keras_home(keras_home, *args, env=None):
    return subprocess.run([sys.executable, "-c", LOAD_IMAGENET, *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_HOME": str(keras_home), **(env or {})})


@pytest.mark.slow
def test_imagenet_weights_load_from_the_keras_cache(photo_batch, tmp_path):
    """The loading path, on a local file where Keras keeps what it downloads: the published
    layout (keras.applications' own model, saved in its HDF5 format), random values."""
    theirs = randomize(keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3),
                                                      weights=None))
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    theirs.save(cache / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96.h5")
    images = photo_batch(96)
    np.save(tmp_path / "images.npy", images)
    result = run_with_keras_home(tmp_path / "keras", tmp_path / "ours.npy", tmp_path / "images.npy",
                                 env={"https_proxy": "http://127.0.0.1:9"})  # no download
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "ours.npy"), theirs.predict(images, verbose=0),
                               atol=1e-4)


def test_imagenet_weights_that_cannot_be_downloaded_fail_with_the_way_out(tmp_path):
    """Offline on every machine: an empty Keras cache and a proxy that refuses connections."""
    result = run_with_keras_home(tmp_path / "empty", tmp_path / "o.npy", tmp_path / "i.npy",
                                 env={"https_proxy": "http://127.0.0.1:9",
                                      "HTTPS_PROXY": "http://127.0.0.1:9"})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"RuntimeError: could not download the published Keras ImageNet weights for "
        r"mobilenet_v2 \(alpha 0\.35, input 96\): URL fetch failure on https://\S+/"
        r"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0\.35_96\.h5: .+\. Keras downloads "
        r"them on first use into \$KERAS_HOME/models \(default ~/\.keras/models\); where this "
        r"machine cannot, copy the file named in that URL there, or pass weights=PATH to a "
        r"\.weights\.h5 file\.", last), last


def test_a_bug_while_loading_published_weights_is_not_called_a_download_failure(monkeypatch):
    from tfmobile.models import registry

    def broken(**_kwargs):
        raise TypeError("unexpected keyword argument 'alpha'")

    entry = registry.entry("mobilenet_v2")
    monkeypatch.setitem(registry._REGISTRY, "mobilenet_v2",
                        dataclasses.replace(entry, keras_application=broken))
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        models.build("mobilenet_v2", alpha=0.35, input_size=96, weights="imagenet")

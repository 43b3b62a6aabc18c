"""Shared fixtures: TensorFlow imported quietly, and the embedded real photographs."""

import numpy as np
import pytest

from tfmobile_core import cli

cli.quiet_tensorflow()


@pytest.fixture(scope="session")
def standin_bin(tmp_path_factory):
    """A directory of launchers for the stand-in tools (benchmark_model, edgetpu_compiler),
    each running under this test run's interpreter."""
    from standins import launchers

    return launchers(tmp_path_factory.mktemp("standin_bin"))


@pytest.fixture(scope="session")
def photos():
    """The bundled real photographs (calibration/images), decoded to RGB uint8."""
    from calibration import images

    return images.embedded_images()


@pytest.fixture(scope="session")
def photo_batch(photos):
    """Returns the photographs preprocessed for a given input size."""
    from calibration.preprocess import Preprocessing

    cache = {}

    def make(input_size: int) -> np.ndarray:
        if input_size not in cache:
            cache[input_size] = Preprocessing(input_size).batch(photos)
        return cache[input_size]

    return make


# The longest tests (training every architecture; building and running the emulated arm64
# board, one worker's several minutes) go first, so that pytest-xdist's workers do not finish
# the short ones together and leave one worker with the long ones at the end.
LONGEST_FIRST = ("test_int8_accuracy.py", "test_arm64_board.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)  # stable: order kept

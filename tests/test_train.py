"""tfmobile.train: what `train()` and `python -m tfmobile.train` promise.

No check depends on how well a brief run happens to learn beyond a wide margin, so each holds on
any machine. The set is four classes of the region set (calibration/regions.py) whose
photographs differ plainly in colour, 32 crops each, at 48x48. `train()` fits any Keras model
with logits: its checks use a two-convolution network, which traces in a second and learns
these classes within a few epochs (the zoo's smallest graph, FD-MobileNet at alpha 0.25, spends
over 10 s tracing each run and stays near chance for dozens of steps). The command builds zoo
networks: its check trains FD-MobileNet for one epoch.
"""

import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from calibration import regions
from tfmobile import data, models
from tfmobile.train import train


CLASSES = ["hubble_deep_field", "ihc", "retina", "rocket"]  # dark, pale, red, blue-grey
SIZE = 48
BATCH = 16  # 8 steps an epoch


@pytest.fixture(scope="module")
def photo_classes(tmp_path_factory):
    root = regions.build(tmp_path_factory.mktemp("regions"), train_per_class=32, val_per_class=2)
    for split in ("train", "val"):
        for folder in (root / split).iterdir():
            if folder.name not in CLASSES:
                shutil.rmtree(folder)
    train_set = data.load_folder(root / "train")
    assert train_set.class_names == CLASSES
    return root, train_set, data.load_folder(root / "val", train_set.class_names)


def tiny_model() -> keras.Model:
    """Two strided convolutions with batch norm, pooling and a linear classifier (seeded)."""
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((SIZE, SIZE, 3))
    for channels in (8, 16):
        x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(len(CLASSES))(x))


def saved_weights(path) -> list[np.ndarray]:
    model = tiny_model()
    model.load_weights(path)
    return model.get_weights()


def assert_same(actual: list[np.ndarray], expected: list[np.ndarray]):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)


def differs(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


class EachEpoch(keras.callbacks.Callback):
    """Records the weights at the end of every epoch and, given `scores`, reports those as the
    epoch's validation top-1 in place of the measured ones (it runs before train() picks)."""

    def __init__(self, scores=None):
        super().__init__()
        self.scores, self.weights, self.measured = scores, [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        if self.scores is not None:
            self.measured.append(logs["val_accuracy"])
            logs["val_accuracy"] = self.scores[epoch]


@pytest.fixture(scope="module")
def without_validation(photo_classes, tmp_path_factory):
    _, train_set, _ = photo_classes
    model = tiny_model()
    checkpoint = tmp_path_factory.mktemp("last") / "tiny.weights.h5"
    epochs = EachEpoch()
    result = train(model, train_set, epochs=8, batch_size=BATCH, checkpoint=checkpoint,
                   callbacks=[epochs])
    return model, result, epochs, checkpoint


# The tests sharing the run without validation stay on one worker (pytest-xdist).
@pytest.mark.xdist_group("train_without_validation")
def test_the_training_loss_falls(without_validation):
    _, result, _, _ = without_validation
    losses = result.history["loss"]
    assert len(losses) == 8
    # Measured over 5 seeds: the last epoch's loss 0.31-0.38 of the first's (about 1.0-1.6,
    # chance is ln 4 = 1.39), falling nearly every epoch.
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.xdist_group("train_without_validation")
def test_the_checkpoint_holds_the_weights_alone(without_validation):
    """No optimizer state: saved from the compiled model, Keras would add Adam's two moment
    estimates per weight, tripling the file."""
    import h5py

    _, _, _, checkpoint = without_validation
    with h5py.File(checkpoint) as saved:
        assert "optimizer" not in saved and "layers" in saved


@pytest.mark.xdist_group("train_without_validation")
def test_without_validation_the_last_epoch_is_kept(without_validation):
    model, result, epochs, checkpoint = without_validation
    assert len(epochs.weights) == 8 and result.best_val_top1 is None
    assert differs(epochs.weights[-1], epochs.weights[-2])  # the comparison can tell epochs apart
    assert_same(model.get_weights(), epochs.weights[-1])
    assert_same(saved_weights(checkpoint), epochs.weights[-1])


def test_with_validation_the_best_epoch_is_kept(photo_classes, tmp_path):
    """The weights left in the model and in the checkpoint are the best validation epoch's.

    A run this short often scores best at its last epoch, which could not tell keeping the best
    from keeping the last: the scores are scripted so that the best is the second epoch, and the
    fourth improves on the third without beating the second.
    """
    _, train_set, val_set = photo_classes
    model = tiny_model()
    checkpoint = tmp_path / "tiny.weights.h5"
    epochs = EachEpoch(scores=[0.3, 0.7, 0.5, 0.6])
    result = train(model, train_set, val_set, epochs=4, batch_size=BATCH, checkpoint=checkpoint,
                   callbacks=[epochs])
    assert len(epochs.measured) == 4  # validation ran every epoch
    assert result.history["val_accuracy"] == [0.3, 0.7, 0.5, 0.6]
    assert result.best_val_top1 == 0.7
    assert all(differs(epochs.weights[1], epochs.weights[i]) for i in (0, 2, 3))
    assert_same(model.get_weights(), epochs.weights[1])
    assert_same(saved_weights(checkpoint), epochs.weights[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.weights.h5"]


def test_a_failed_checkpoint_save_keeps_the_previous_checkpoint(photo_classes, tmp_path,
                                                                 monkeypatch):
    _, train_set, _ = photo_classes
    model = tiny_model()
    checkpoint = tmp_path / "tiny.weights.h5"
    model.save_weights(checkpoint)
    previous = checkpoint.read_bytes()
    attempts = []

    def save_fails_midway(self, path, *args, **kwargs):
        attempts.append(path)
        with open(path, "wb") as f:
            f.write(previous[: len(previous) // 2])  # the start of an HDF5 file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save_weights", save_fails_midway)
    with pytest.raises(OSError, match="No space left"):
        train(model, train_set, epochs=1, batch_size=BATCH, checkpoint=checkpoint)
    assert len(attempts) == 1
    assert checkpoint.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.weights.h5"]  # no temporary left
    assert_same(saved_weights(checkpoint), tiny_model().get_weights())


@pytest.mark.slow
def test_the_cli_writes_the_class_order_beside_the_weights(photo_classes, tmp_path):
    root, train_set, _ = photo_classes
    output = tmp_path / "nested" / "fd.weights.h5"
    result = subprocess.run(
        [sys.executable, "-m", "tfmobile.train", "--model", "fd_mobilenet", "--alpha", "0.25",
         "--input_size", str(SIZE), "--data", str(root / "train"), "--epochs", "1",
         "--output", str(output)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    classes = tmp_path / "nested" / "fd.classes.json"
    assert sorted(p.name for p in output.parent.iterdir()) == ["fd.classes.json", "fd.weights.h5"]
    assert json.loads(classes.read_text()) == CLASSES  # label i is the i-th name
    assert data.read_class_names(output) == CLASSES  # where evaluate and convert look for it
    assert f"classes: {classes}" in result.stdout
    models.build("fd_mobilenet", alpha=0.25, input_size=SIZE, num_classes=len(CLASSES),
                 weights=str(output))  # the weights load as saved


def test_a_run_that_diverges_keeps_no_nan_weights(photo_classes, tmp_path):
    """A learning rate of 1e12 overflows the weights in the first epoch: nothing is kept or
    checkpointed, and the error says what to do."""
    from tfmobile.train import TrainingDiverged

    _, train_set, _ = photo_classes
    checkpoint = tmp_path / "tiny.weights.h5"
    with pytest.raises(TrainingDiverged, match="NaN or infinite in epoch 1.*lower the learning"):
        train(tiny_model(), train_set, epochs=3, batch_size=BATCH, learning_rate=1e12,
              checkpoint=checkpoint)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args,message", [
    (["--learning_rate", "0"], "--learning_rate must be above 0, got 0"),
    (["--quantization_aware_learning_rate", "-1e-4"], "must be above 0, got -0.0001"),
    (["--output", "{tmp}/old.weights.h5"], "is a directory; name the .weights.h5 file"),
])
def test_training_options_that_cannot_train_are_usage_errors(photo_classes, tmp_path, args,
                                                             message):
    root, _, _ = photo_classes
    (tmp_path / "old.weights.h5").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "tfmobile.train", "--model", "fd_mobilenet", "--data",
         str(root / "train"), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1

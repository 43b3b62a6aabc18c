"""Trains a zoo network on a folder of labelled images (one subfolder per class).

  python -m tfmobile.train --model mobilenet_v2 --alpha 0.5 --input_size 96 --data photos/train \
      --val_data photos/val --epochs 10 --output artifacts/mnv2.weights.h5

Augments with random crops and flips, optimises with Adam on a cosine schedule, and keeps the
weights of the best validation epoch (checkpointed after every improvement, so an interrupted
run keeps its best). The weights load with `--weights` in tfmobile.convert and evaluate.

`--quantization_aware_epochs N` follows with N epochs of quantization-aware fine-tuning
(tfmobile/qat.py) for networks that lose accuracy in int8.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np
from absl import flags

from tfmobile import model_flags
from tfmobile_core import cli


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; the message says in which epoch and what was kept."""


@dataclasses.dataclass
class TrainResult:
    history: dict
    best_val_top1: float | None
    class_names: list[str]


def _fixed_size(images, size: int) -> np.ndarray:
    """Every image resized (shorter side) and centre-cropped to size x size, as uint8."""
    from calibration.preprocess import Preprocessing

    whole = Preprocessing(size, crop_fraction=1.0, scale=1.0, offset=0.0)
    return whole.batch(images).astype(np.uint8)  # bilinear on uint8 already rounded: exact


def train(model, train_set, val_set=None, *, epochs=10, batch_size=32, learning_rate=2e-3,
          bn_momentum=0.9, checkpoint=None, checkpoint_model=None, verbose=0,
          seed=0, callbacks=()) -> TrainResult:
    """Fits `model` (logits output) in place and leaves it with its best validation weights.

    `checkpoint_model` is whose weights the checkpoint holds, if not `model`'s (a model sharing
    its layers: tfmobile.qat trains a fake-quantized twin and saves the float model).
    `callbacks` are extra Keras callbacks; each epoch they run before the best epoch is chosen,
    on the same logs.

    Batch norm's moving statistics follow with `bn_momentum` (0.9): the Keras default of 0.99
    lags so far behind a short run that inference accuracy falls to half of training accuracy.
    """
    import keras
    import tensorflow as tf

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum

    from tfmobile_core import atomic

    size = model.input_shape[1]
    pad = round(size / 0.875)  # crop input_size from a 1.14x larger view, as evaluation does
    x = _fixed_size(train_set.images, pad)
    y = train_set.labels.astype(np.int32)

    def augment(image, label):
        image = tf.image.random_crop(image, (size, size, 3), seed=seed)
        image = tf.image.random_flip_left_right(image, seed=seed)
        return tf.cast(image, tf.float32) / 127.5 - 1.0, label

    keras.utils.set_random_seed(seed)
    dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
               .map(augment).batch(batch_size).prefetch(2))
    steps = math.ceil(len(x) / batch_size) * epochs
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    val = None
    if val_set is not None:
        val = (val_set.batch(size), val_set.labels.astype(np.int32))
    best = {"top1": -1.0, "weights": None, "epoch": None}

    # Checkpoints hold the layers' weights alone: saved from the compiled model, Keras adds the
    # optimizer's moment estimates, twice the weights again (a view sharing the layers has none).
    weights_only = checkpoint_model or keras.Model(model.inputs, model.outputs)

    diverged = {}

    class KeepBest(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if not math.isfinite((logs or {}).get("loss", 0.0)):  # never kept, never saved
                diverged["epoch"] = epoch + 1
                self.model.stop_training = True
                return
            score = (logs or {}).get("val_accuracy", epoch)  # without validation: the last
            if score > best["top1"]:
                best["epoch"] = epoch + 1
                best["top1"], best["weights"] = score, self.model.get_weights()
                if checkpoint:
                    with atomic.replacing(checkpoint) as tmp:
                        weights_only.save_weights(tmp)

    history = model.fit(dataset, epochs=epochs, validation_data=val, verbose=verbose,
                        shuffle=False,  # the dataset shuffles itself each epoch
                        callbacks=[*callbacks, keras.callbacks.TerminateOnNaN(), KeepBest()])
    if diverged:
        if best["weights"] is None:
            raise TrainingDiverged(f"the loss became NaN or infinite in epoch {diverged['epoch']}"
                                   ", before any epoch finished: lower the learning rate")
        model.set_weights(best["weights"])
        raise TrainingDiverged(
            f"the loss became NaN or infinite in epoch {diverged['epoch']}; the weights of epoch "
            f"{best['epoch']} are kept" + (f" in {checkpoint}" if checkpoint else "")
            + ": lower the learning rate")
    model.set_weights(best["weights"])
    return TrainResult(
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        best_val_top1=best["top1"] if val is not None else None,
        class_names=train_set.class_names,
    )


def weights_output(flag: str | None, identity) -> pathlib.Path:
    """Where --output puts the weights (default artifacts/<label>.weights.h5), checked before
    any training: a wrong name or a directory is found now, not at the first checkpoint."""
    output = pathlib.Path(flag or f"artifacts/{identity.label()}.weights.h5")
    if not output.name.endswith(".weights.h5"):
        raise cli.UsageError("--output must end in .weights.h5 (the Keras weights format)")
    if output.is_dir():
        raise cli.UsageError(f"--output {output} is a directory; name the .weights.h5 file")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cli.UsageError(f"cannot create {output.parent}: {err.strerror}") from None
    return output


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    if model_flags.is_detector(FLAGS.model):
        from tfmobile.detection import commands

        return commands.train_main(FLAGS)
    if not FLAGS.epochs and not FLAGS.quantization_aware_epochs:
        raise cli.UsageError("--epochs 0 trains nothing without --quantization_aware_epochs")
    from tfmobile import data

    # Fine-tuning trained weights keeps their class order (their .classes.json): label i must
    # stay the classifier's output i, whatever order the folders' names sort in.
    try:
        class_names = data.read_class_names(FLAGS.weights) if FLAGS.weights else None
        train_set = data.load_folder(FLAGS.data, class_names)
        val_set = (data.load_folder(FLAGS.val_data, train_set.class_names)
                   if FLAGS.val_data else None)
    except data.DataError as err:
        raise cli.UsageError(str(err)) from None
    args = model_flags.model_args(FLAGS)
    args["num_classes"] = len(train_set.class_names)
    identity = model_flags.identity(FLAGS.model, args)  # checked before TensorFlow loads
    for rate in ("learning_rate", "quantization_aware_learning_rate"):
        if not FLAGS[rate].value > 0:
            raise cli.UsageError(f"--{rate} must be above 0, got {FLAGS[rate].value:g}")
    output = weights_output(FLAGS.output, identity)
    cli.quiet_tensorflow(FLAGS.verbose)
    model = model_flags.build_model(FLAGS.model, weights=FLAGS.weights,
                                    classifier_activation=None, **args)
    print(f"training {FLAGS.model} on {len(train_set.images)} images, "
          f"{len(train_set.class_names)} classes" + (f", {train_set.skipped} unreadable skipped"
                                                    if train_set.skipped else ""))
    common = dict(batch_size=FLAGS.batch_size, checkpoint=output,
                  verbose=1 if cli.interactive() else 2)
    try:
        if FLAGS.epochs:
            result = train(model, train_set, val_set, epochs=FLAGS.epochs,
                           learning_rate=FLAGS.learning_rate, **common)
        if FLAGS.quantization_aware_epochs:
            from tfmobile import qat

            print(f"quantization-aware fine-tuning: {FLAGS.quantization_aware_epochs} epochs")
            result = qat.fine_tune(model, train_set, val_set,
                                   epochs=FLAGS.quantization_aware_epochs,
                                   learning_rate=FLAGS.quantization_aware_learning_rate, **common)
    except TrainingDiverged as err:
        raise cli.Failure(f"training diverged: {err}") from None
    classes = data.class_names_path(output)
    from tfmobile_core import atomic

    atomic.write_json(classes, result.class_names)
    best = ""
    if val_set is not None:
        simulated = " (int8 simulated)" if FLAGS.quantization_aware_epochs else ""
        best = f", best validation top-1{simulated} {result.best_val_top1:.1%}"
    print(f"weights: {output} (classes: {classes}){best}")


if __name__ == "__main__":
    model_flags.define_model_flags()
    flags.DEFINE_string("data", None, "Training images: a folder with one subfolder per class. "
                        "Detectors: a COCO instances .json, a Pascal VOC folder, a TF Object "
                        "Detection API .tfrecord, or 'composed' (the real-image set composed "
                        "from the embedded photographs, calibration/detection_set.py).")
    flags.DEFINE_string("val_data", None, "Validation images, same layout (best epoch is kept; "
                        "detectors: by mAP@.5).")
    model_flags.define_weights_flags("Start from these weights (.weights.h5 or imagenet).")
    flags.DEFINE_integer("epochs", 10, "Passes over the training images (0: none, with "
                         "--quantization_aware_epochs to fine-tune --weights only).", lower_bound=0)
    flags.DEFINE_integer(
        "quantization_aware_epochs", 0,
        "After the float epochs, this many epochs of quantization-aware fine-tuning "
        "(tfmobile/qat.py): the forward pass rounds every activation TFLite int8 quantizes "
        "(moving min/max ranges) and every kernel (per channel) as the int8 model will, so the "
        "weights learn to tolerate it. For networks whose int8 model loses accuracy after "
        "conversion (MobileNet V3: hard-swish and SE activations are heavy-tailed, and rounding "
        "noise adds up over the layers). The weights written are the ordinary float model's, "
        "converted with tfmobile.convert --int8 as usual; the best epoch is chosen by the "
        "simulated int8 validation top-1.", lower_bound=0)
    flags.DEFINE_float("quantization_aware_learning_rate", 5e-4,
                       "Adam's initial learning rate for the quantization-aware epochs.")
    flags.DEFINE_integer("batch_size", 32, "Images per step.", lower_bound=1)
    flags.DEFINE_float("learning_rate", 2e-3, "Adam's initial learning rate (cosine decay to 0).")
    flags.DEFINE_string("output", None, "Where the weights go (.weights.h5); default "
                        "artifacts/<network>_<alpha>_<size>[_<variants>]_c<classes>.weights.h5.")
    flags.DEFINE_boolean("verbose", False, "Show TensorFlow's own logging.")
    flags.mark_flag_as_required("data")
    cli.run(main)

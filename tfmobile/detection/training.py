"""A detection trainer for both families (SSDLite, the YOLOv5-style head): an explicit traced
train step around whatever loss the family defines, with the schedule of the TF OD API's
MobileNet V3 SSDLite configs (cosine decay after a linear warmup), gradient clipping, a stop
with a clear error when the loss diverges, and a checkpoint of the best validation epoch.

Why not keras.Model.fit: a detection loss needs the ground truth as variable-length padded
box lists beside the images and returns several parts worth watching (box, cls, ...); an explicit
GradientTape step takes them as they come, and checks every step's loss before applying it.

The optimizer is Adam. The configs' momentum SGD (0.9, cosine from 0.4 over 400k steps of
batch 512) is tuned for runs three orders of magnitude longer than this package's. Measured on
tests/test_detection_ssd.py's stand-in detector (from scratch, random red and blue rectangles,
batch 8, 20 warmup steps, held-out loss after 600 steps, two seeds): Adam 1e-2 0.46-0.47,
Adam 3e-3 0.49-0.50, SGD 0.1 0.50, SGD 0.04 0.52; Adam 1e-2 reached SGD's final 0.50 in
300-400 steps, SGD 0.1 needed 500-600. After 200 steps: Adam 1e-2 0.54, 3e-3 0.59, 1e-3 0.71;
SGD 0.1 0.60, 0.4 0.63, 0.04 0.62, 0.01 0.69. optimizer="sgd" gives the configs' choice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator

from tfmobile.train import TrainingDiverged

# The configs' warmup starts at warmup_learning_rate 0.13333 for learning_rate_base 0.4: a third.
WARMUP_START_FRACTION = 1 / 3
CLIP_NORM = 10.0  # global gradient norm: a guard against a single bad step, not a tuned value
SGD_MOMENTUM = 0.9

__all__ = ["TrainingDiverged", "fit", "learning_rate_schedule"]


def learning_rate_schedule(learning_rate: float, total_steps: int, warmup_steps: int):
    """Linear warmup from learning_rate / 3 to learning_rate over warmup_steps, then a cosine
    to 0 at total_steps: the OD API's cosine_decay_with_warmup."""
    import keras

    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    decay_steps = max(total_steps - warmup_steps, 1)
    if not warmup_steps:
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    return keras.optimizers.schedules.CosineDecay(
        learning_rate * WARMUP_START_FRACTION, decay_steps,
        warmup_target=learning_rate, warmup_steps=warmup_steps)


def fit(train_model, loss_fn: Callable, train_batches, *, steps_per_epoch: int, epochs: int,
        learning_rate: float, warmup_steps: int, val_batches=None, val_fn=None, checkpoint=None,
        seed: int = 0, progress: bool = True, bn_momentum: float = 0.9, optimizer: str = "adam",
        clip_norm: float = CLIP_NORM) -> dict:
    """Trains `train_model` in place and leaves it with the weights of its best epoch.

    - `loss_fn(outputs, gt_boxes, gt_classes) -> (total, {part: scalar})` takes the model's
      outputs as the model returns them (TensorFlow ops; it is traced into the step). The
      model's own regularization losses (model.losses) are added to the total it optimizes.
    - `train_batches` yields (images float32 [B, S, S, 3] in [-1, 1], gt_boxes [B, M, 4],
      gt_classes int32 [B, M] padded with -1), as tfmobile/detection/augment.py's batches():
      an iterator, read on across epochs, or an iterable or a no-argument callable returning
      one, restarted whenever it runs out. Batches may differ in B and M without retracing.
    - The best epoch is the one whose `val_fn(train_model)` (a number to maximise, mAP@.5
      say) is highest; without val_fn, the lowest mean loss over `val_batches` (a finite
      iterable or callable of the same tuples, read once and kept); without either, the last.
      Each improvement is written to `checkpoint` (a .weights.h5 path) whole or not at all.
    - `optimizer` is "adam" or "sgd" (momentum 0.9); both follow learning_rate_schedule over
      steps_per_epoch * epochs steps, with gradients clipped to a global norm of clip_norm.
    - Batch norm's moving statistics follow with `bn_momentum`, for the reason
      tfmobile/train.py gives (the Keras default 0.99 lags behind short runs).

    Raises TrainingDiverged when a step's loss or gradient is NaN or infinite; that step's
    gradients are not applied (its forward pass has moved batch norm's statistics already), and
    the model is left with its best epoch's weights if an epoch finished.

    Returns a history: per-epoch lists "loss" (the objective: loss_fn's total plus
    "regularization", when the model has any) and each part's name (training means), "lr" (at
    the epoch's end), "seconds", "val" (the metric maximised) and "val_loss" (loss_fn's total) where computed;
    and "best_epoch" (1-based) and "best_val" (None without validation).

    The optimizer and its measurement against momentum SGD: the module's docstring. A head
    trained from scratch took Adam at 3e-3 to 1e-2 there; a pretrained backbone may want the
    classifier trainer's lower 2e-3 (tfmobile/train.py).
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from tfmobile_core import atomic

    if checkpoint is not None and not str(checkpoint).endswith(".weights.h5"):
        raise ValueError(f"checkpoint must end in .weights.h5 (Keras's weights format): {checkpoint}")
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"steps_per_epoch and epochs must be at least 1, "
                         f"got {steps_per_epoch} and {epochs}")
    keras.utils.set_random_seed(seed)
    for layer in _all_layers(train_model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum

    schedule = learning_rate_schedule(learning_rate, steps_per_epoch * epochs, warmup_steps)
    if optimizer == "adam":
        opt = keras.optimizers.Adam(schedule)
    elif optimizer == "sgd":
        opt = keras.optimizers.SGD(schedule, momentum=SGD_MOMENTUM)
    else:
        raise ValueError(f'optimizer must be "adam" or "sgd", got {optimizer!r}')
    variables = train_model.trainable_variables
    opt.build(variables)  # its slots exist before the step applies it inside a tf.cond

    shape = getattr(train_model, "input_shape", None)
    image_shape = list(shape[1:]) if isinstance(shape, tuple) and len(shape) == 4 else [None] * 3
    signature = (tf.TensorSpec([None, *image_shape], tf.float32),
                 tf.TensorSpec([None, None, 4], tf.float32),
                 tf.TensorSpec([None, None], tf.int32))

    @tf.function(input_signature=signature)
    def train_step(images, gt_boxes, gt_classes):
        with tf.GradientTape() as tape:
            outputs = train_model(images, training=True)
            total, parts = loss_fn(outputs, gt_boxes, gt_classes)
            objective = total
            if train_model.losses:  # kernel regularizers (the configs' L2 4e-5)
                parts = {**parts, "regularization": tf.add_n(train_model.losses)}
                objective = total + parts["regularization"]
        grads = tape.gradient(objective, variables)
        pairs = [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]
        clipped, norm = tf.clip_by_global_norm([g for g, _ in pairs], clip_norm)
        finite = tf.math.is_finite(objective) & tf.math.is_finite(norm)

        def apply():
            opt.apply_gradients(zip(clipped, [v for _, v in pairs], strict=True))
            return tf.constant(True)

        tf.cond(finite, apply, lambda: tf.constant(False))
        return objective, parts, norm

    @tf.function(input_signature=signature)
    def val_step(images, gt_boxes, gt_classes):
        total, _ = loss_fn(train_model(images, training=False), gt_boxes, gt_classes)
        return total

    batches = _endless(train_batches)
    val_list = None
    if val_batches is not None:
        val_list = list(val_batches() if callable(val_batches) else val_batches)
        if not val_list:
            raise ValueError("val_batches holds no batch")
    validating = val_fn is not None or val_list is not None

    history: dict = {"loss": [], "lr": [], "seconds": []}
    best = {"val": -math.inf, "epoch": None, "weights": None}
    step = 0
    for epoch in range(1, epochs + 1):
        start = time.monotonic()
        sums: dict[str, float] = {}
        for _ in range(steps_per_epoch):
            images, gt_boxes, gt_classes = next(batches)
            objective, parts, norm = train_step(
                np.asarray(images, np.float32), np.asarray(gt_boxes, np.float32),
                np.asarray(gt_classes, np.int32))
            step += 1
            objective, norm = float(objective), float(norm)
            if not (math.isfinite(objective) and math.isfinite(norm)):
                _diverged(train_model, best, epoch, step, objective, norm, checkpoint)
            for name, value in {"loss": objective, **parts}.items():
                sums[name] = sums.get(name, 0.0) + float(value)
        for name, value in sums.items():
            history.setdefault(name, []).append(value / steps_per_epoch)
        history["lr"].append(float(schedule(step)))

        line = ", ".join(f"{k} {v[-1]:.4f}" for k, v in history.items() if k in sums)
        score = epoch  # without validation the last epoch is the best
        if val_list is not None:
            val_loss = float(np.mean([float(val_step(np.asarray(x, np.float32),
                                                     np.asarray(b, np.float32),
                                                     np.asarray(c, np.int32)))
                                      for x, b, c in val_list]))
            history.setdefault("val_loss", []).append(val_loss)
            line += f"; val_loss {val_loss:.4f}"
            score = -val_loss
        if val_fn is not None:
            score = float(val_fn(train_model))
            line += f"; val {score:.4f}"
        if validating:
            if not math.isfinite(score):
                _diverged(train_model, best, epoch, step, score, 0.0, checkpoint, what="validation metric")
            history.setdefault("val", []).append(score)
        improved = score > best["val"]
        if improved:
            best.update(val=score, epoch=epoch, weights=train_model.get_weights())
            if checkpoint is not None:
                with atomic.replacing(checkpoint) as tmp:
                    train_model.save_weights(tmp)
        history["seconds"].append(time.monotonic() - start)
        if progress:
            mark = " (best)" if improved and validating else ""
            print(f"epoch {epoch}/{epochs}: {line}{mark}; lr {history['lr'][-1]:.3g}, "
                  f"{history['seconds'][-1]:.1f} s", flush=True)

    train_model.set_weights(best["weights"])
    history["best_epoch"] = best["epoch"]
    history["best_val"] = best["val"] if validating else None
    return history


def _diverged(model, best, epoch, step, value, norm, checkpoint, what="loss"):
    """Puts the best epoch's weights back, if any, and raises TrainingDiverged saying so."""
    if math.isfinite(value):
        where = f"the gradient norm became {norm} in step {step} (epoch {epoch})"
    else:
        where = f"the {what} became {value} in step {step} (epoch {epoch})"
    if best["weights"] is None:
        raise TrainingDiverged(f"{where}, before any epoch finished: lower the learning rate")
    model.set_weights(best["weights"])
    kept = f" in {checkpoint}" if checkpoint else ""
    raise TrainingDiverged(f"{where}; the weights of epoch {best['epoch']} are kept{kept}: "
                           "lower the learning rate")


def _endless(source) -> Iterator:
    """Batches from `source` without end: an iterator is read on; an iterable or a callable
    returning one is restarted whenever it runs out."""
    restartable = callable(source) or (isinstance(source, Iterable)
                                       and not isinstance(source, Iterator))

    def fresh():
        return iter(source() if callable(source) else source)

    iterator = fresh()
    while True:
        yielded = False
        for batch in iterator:
            yielded = True
            yield batch
        if not restartable:
            raise ValueError("train_batches ran out: pass an endless iterator, or an iterable or "
                             "callable that can start over")
        if not yielded:
            raise ValueError("train_batches yields no batch")
        iterator = fresh()


def _all_layers(model):
    """Every layer, nested models' included (a backbone is often a layer of its own)."""
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all_layers(layer)

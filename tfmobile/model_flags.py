"""The model-selection flags every tfmobile command shares, derived from the zoo's registry."""

from __future__ import annotations

from absl import flags

from tfmobile_core import cli
from tfmobile_core.records import ModelIdentity


def define_model_flags(required: bool = True) -> None:
    """--model, --alpha, --input_size, --num_classes, and one flag per variant the registry
    declares (--groups, --minimalistic, --split_groups, ...)."""
    from tfmobile import models  # the registry: no TensorFlow

    flags.DEFINE_string("model", None, "Zoo network to build: "
                        + ", ".join(models.available()) + ".")
    flags.DEFINE_float("alpha", 1.0, "Width multiplier: scales every layer's channels "
                       "(ShuffleNet V2 comes in 0.5, 1, 1.5 and 2).")
    flags.DEFINE_integer("input_size", None, "Side of the square RGB input, at least 32 "
                         "(default 224; detectors 320).")
    flags.DEFINE_integer("num_classes", None, "Classifier width, or a detector's object classes "
                         "(default: the number of classes the --weights were trained on, from "
                         "their .classes.json; else 1000, or COCO's 90 for detectors).")
    for key, variant in models.all_variants().items():
        if isinstance(variant.default, bool):
            flags.DEFINE_boolean(key, None, f"{variant.help} (default: {variant.default}).")
        else:
            flags.DEFINE_integer(key, None, f"{variant.help}: "
                                 + ", ".join(map(str, variant.choices))
                                 + f" (default: {variant.default}).")
    if required:
        flags.mark_flag_as_required("model")


def is_detector(name: str | None) -> bool:
    """Whether --model names a detector (ssdlite_*, yolo_*); unknown names are not, and get
    the usual error later."""
    from tfmobile import models

    try:
        return name is not None and models.entry(name).task == "detection"
    except ValueError:
        return False


def define_weights_flags(weights_help: str) -> None:
    """--weights, and --drop_background for the 1001-class published .tflite files."""
    flags.DEFINE_string("weights", None, weights_help + " A float .tflite classifier of the same "
                        "network (a published MobileNet) gives its weights too; its class order "
                        "is ImageNet's when it scores 1000 or 1001 classes.")
    flags.DEFINE_boolean("drop_background", False, "With --weights of a 1001-class .tflite "
                         "(TF-slim checkpoints: output 0 is a background class), drop that class "
                         "and keep the 1000 ImageNet classes.")


def model_args(FLAGS) -> dict:
    """The flags as keyword arguments of tfmobile.models.build (variants only when given)."""
    from tfmobile import models

    args = dict(alpha=FLAGS.alpha)
    for key in ("input_size", "num_classes"):  # else the network's default (its task's)
        if FLAGS[key].value is not None:
            args[key] = FLAGS[key].value
    for key in models.all_variants():
        if FLAGS[key].value is not None:
            args[key] = FLAGS[key].value
    return args


def identity(name: str, args: dict, *, weights: str | None = None,
             class_names=None) -> ModelIdentity:
    """The ModelIdentity of zoo network `name` built with `args`; bad arguments, and class
    names that do not match the classifier's width, are usage errors."""
    from tfmobile import models

    if class_names is not None and args.get("num_classes", len(class_names)) != len(class_names):
        raise cli.UsageError(f"the weights {weights} were trained on {len(class_names)} classes "
                             f"(their .classes.json); --num_classes {args['num_classes']} "
                             "does not match: drop --num_classes")
    try:
        return models.identity(name, weights=weights, class_names=class_names, **args)
    except ValueError as err:
        raise cli.UsageError(str(err).strip().splitlines()[0]) from None


def identity_from_flags(FLAGS, args: dict | None = None) -> ModelIdentity:
    """The network the flags name (--model, --alpha, ..., --weights); with trained --weights,
    their class order (<weights>.classes.json) travels with it, and --num_classes defaults to
    its length."""
    from tfmobile import data

    weights = FLAGS.weights
    args = dict(args or model_args(FLAGS))
    drop_background = "drop_background" in FLAGS and FLAGS.drop_background
    if weights and str(weights).lower().endswith(".tflite"):
        outputs, class_names = tflite_classes(weights, FLAGS.num_classes, drop_background)
        args["num_classes"] = outputs
    elif drop_background:
        raise cli.UsageError("--drop_background applies to --weights of a 1001-class .tflite")
    else:
        try:
            class_names = data.read_class_names(weights) if weights else None
        except data.DataError as err:
            raise cli.UsageError(str(err)) from None
    if class_names is not None and FLAGS.num_classes is None:
        args["num_classes"] = len(class_names)
    return identity(FLAGS.model, args, weights=weights, class_names=class_names)


def tflite_classes(weights: str, num_classes: int | None, drop_background: bool):
    """(outputs, class names) the published .tflite's weights give the zoo model: ImageNet's
    order, with or without the background class; names None for another width."""
    from tfmobile import imagenet
    from tfmobile.models import tflite_weights

    try:
        width = tflite_weights.output_width(weights)
    except tflite_weights.PortError as err:
        raise cli.UsageError(str(err)) from None
    if drop_background and width != 1001:
        raise cli.UsageError(f"--drop_background: {weights} scores {width} classes, not the "
                             "1001 (background first) of a TF-slim checkpoint")
    outputs = width - 1 if drop_background else width
    if num_classes is not None and num_classes != outputs:
        if not (width == 1001 and num_classes == 1000):
            raise cli.UsageError(f"--weights {weights} scores {width} classes; --num_classes "
                                 f"{num_classes} does not match: drop --num_classes")
        outputs = 1000  # --num_classes 1000 says what --drop_background says
    return outputs, imagenet.class_names(outputs)


def build_model(name: str, **kwargs):
    """tfmobile.models.build with its argument errors turned into usage errors."""
    from tfmobile import models

    try:
        return models.build(name, **kwargs)
    except (ValueError, OSError) as err:  # bad arguments, or a weights file that will not load
        raise cli.UsageError(str(err).strip().splitlines()[0]) from None
    except RuntimeError as err:  # published weights that cannot be downloaded here
        raise cli.Failure(str(err)) from None

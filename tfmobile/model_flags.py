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
    flags.DEFINE_integer("input_size", 224, "Side of the square RGB input, at least 32.")
    flags.DEFINE_integer("num_classes", None, "Classifier width (default: the number of classes "
                         "the --weights were trained on, from their .classes.json; else 1000).")
    for key, variant in models.all_variants().items():
        if isinstance(variant.default, bool):
            flags.DEFINE_boolean(key, None, f"{variant.help} (default: {variant.default}).")
        else:
            flags.DEFINE_integer(key, None, f"{variant.help}: "
                                 + ", ".join(map(str, variant.choices))
                                 + f" (default: {variant.default}).")
    if required:
        flags.mark_flag_as_required("model")


def model_args(FLAGS) -> dict:
    """The flags as keyword arguments of tfmobile.models.build (variants only when given)."""
    from tfmobile import models

    args = dict(alpha=FLAGS.alpha, input_size=FLAGS.input_size,
                num_classes=FLAGS.num_classes if FLAGS.num_classes is not None else 1000)
    for key in models.all_variants():
        if FLAGS[key].value is not None:
            args[key] = FLAGS[key].value
    return args


def identity(name: str, args: dict, *, weights: str | None = None,
             class_names=None) -> ModelIdentity:
    """The ModelIdentity of zoo network `name` built with `args`; bad arguments, and class
    names that do not match the classifier's width, are usage errors."""
    from tfmobile import models

    if class_names is not None and args["num_classes"] != len(class_names):
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
    try:
        class_names = data.read_class_names(weights) if weights else None
    except data.DataError as err:
        raise cli.UsageError(str(err)) from None
    args = dict(args or model_args(FLAGS))
    if class_names is not None and FLAGS.num_classes is None:
        args["num_classes"] = len(class_names)
    return identity(FLAGS.model, args, weights=weights, class_names=class_names)


def build_model(name: str, **kwargs):
    """tfmobile.models.build with its argument errors turned into usage errors."""
    from tfmobile import models

    try:
        return models.build(name, **kwargs)
    except (ValueError, OSError) as err:  # bad arguments, or a weights file that will not load
        raise cli.UsageError(str(err).strip().splitlines()[0]) from None
    except RuntimeError as err:  # published weights that cannot be downloaded here
        raise cli.Failure(str(err)) from None

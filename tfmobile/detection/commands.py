"""What `tfmobile.train` and `tfmobile.evaluate` do when the model is a detector.

  python -m tfmobile.train --model ssdlite_mobilenet_v3_small --input_size 160 --data composed \\
      --val_data composed --epochs 10 --output artifacts/det.weights.h5
  python -m tfmobile.evaluate --tflite artifacts/ssdlite_..._int8.tflite --reference keras \\
      --model ssdlite_mobilenet_v3_small --input_size 160 --weights artifacts/det.weights.h5 \\
      --data composed --draw artifacts/drawings

--data names a detection set in the formats users have (`load_dataset`): a COCO instances
JSON, a Pascal VOC folder, TF Object Detection API TFRecords, or `composed`: the real-image set
composed from the embedded photographs (calibration/detection_set.py), `composed:N` for N images.
"""

from __future__ import annotations

import pathlib

import numpy as np

from tfmobile_core import cli

COMPOSED = "composed"
COMPOSED_COUNTS = {"train": 400, "val": 100}
MAX_BOXES = 32  # objects per image the trainer pads to (the composed set has at most 4)
VAL_SCORE_THRESHOLD = 0.01  # mAP while training: low scores matter to AP, and NMS stays cheap


def load_dataset(spec: str, split: str, class_names=None, images: str | None = None):
    """The detection set `spec` names: `composed[:N]`, a COCO .json (images in --images, else
    in the folder named like the file, else beside it), a VOC root (Annotations/, JPEGImages/)
    or a .tfrecord file or glob. Raises UsageError naming the problem."""
    from tfmobile.detection import datasets

    try:
        if spec == COMPOSED or spec.startswith(COMPOSED + ":"):
            count = COMPOSED_COUNTS[split]
            if ":" in spec:
                text = spec.partition(":")[2]
                if not text.isdigit() or int(text) < 1:
                    raise cli.UsageError(f"--data {spec}: composed:N takes a number of images "
                                         f"(e.g. composed:{count})")
                count = int(text)
            # Validation images come from the validation half of the backgrounds (seed 0 too).
            found = datasets.composed_set(count, seed=0, split=split)
            if class_names is not None and tuple(class_names) != found.class_names:
                raise datasets.DatasetError(
                    f"the composed set's classes {', '.join(found.class_names)} are not the "
                    f"model's ({', '.join(class_names)})")
            return found
        path = pathlib.Path(spec)
        if path.suffix == ".json":
            folder = pathlib.Path(images) if images else (
                path.with_suffix("") if path.with_suffix("").is_dir() else path.parent)
            return datasets.read_coco(path, folder, class_names)
        if path.is_dir() and (path / "Annotations").is_dir():
            return datasets.read_voc(path, images, class_names)
        if "record" in path.suffix or "*" in spec:
            return datasets.read_tfrecord(spec, class_names)
    except ValueError as err:  # DatasetError, and a bad composed:N
        raise cli.UsageError(" ".join(str(err).split())) from None
    raise cli.UsageError(f"--data {spec}: not a detection set; give a COCO .json, a VOC folder "
                         "(with Annotations/), a .tfrecord, or 'composed'")


def truths(dataset):
    """The ground truth pycocotools compares with."""
    from tfmobile.detection import coco_eval

    return [coco_eval.ImageTruth(s.image_id, s.height, s.width, s.boxes, s.classes)
            for s in dataset]


def network_inputs(dataset, input_size: int, batch: int = 16):
    """Batches of the set's images as the detectors take them (stretched, [-1, 1])."""
    from tfmobile.detection import augment

    samples = list(dataset)
    for start in range(0, len(samples), batch):
        chosen = samples[start:start + batch]
        stretched = np.stack([augment.resize(s.image, s.boxes, input_size)[0] for s in chosen])
        yield chosen, augment.to_network_input(stretched)


def keras_detections(deploy, anchors, dataset, postprocess, progress=None) -> list:
    """Detections of the float Keras model: its outputs through the post-processing op's own
    arithmetic (converters.detection.reference_detections, checked against the op)."""
    from converters import detection

    found = []
    size = deploy.input_shape[1]
    batches = network_inputs(dataset, size)
    if progress is not None:
        batches = progress(batches, -(-len(dataset) // 16), "float detections")
    for _, images in batches:
        outputs = deploy.predict(images, verbose=0)
        for encodings, scores in zip(outputs["box_encodings"], outputs["class_scores"],
                                     strict=True):
            found.append(detection.reference_detections(encodings, scores, anchors, postprocess))
    return found


def tflite_detections(content: bytes, dataset, progress=None) -> list:
    from converters import detection, litert

    interpreter = litert.load(content)
    size = interpreter.get_input_details()[0]["shape"][1]
    found = []
    batches = network_inputs(dataset, size)
    if progress is not None:
        batches = progress(batches, -(-len(dataset) // 16), "detections")
    for _, images in batches:
        found += detection.run_detector(interpreter, images)
    return found


def mean_ap(dataset, detections) -> dict:
    from tfmobile.detection import coco_eval

    made = [coco_eval.ImageDetections(s.image_id, d.boxes, d.classes, d.scores)
            for s, d in zip(dataset, detections, strict=True)]
    return coco_eval.evaluate(truths(dataset), made, dataset.class_names,
                              dataset.coco_category_ids)


# --- tfmobile.train ---------------------------------------------------------------------------


def train_main(FLAGS) -> int:
    from tfmobile import data, model_flags

    if not FLAGS.epochs and not FLAGS.quantization_aware_epochs:
        raise cli.UsageError("--epochs 0 trains nothing without --quantization_aware_epochs")
    if not FLAGS.epochs and not FLAGS.weights:
        raise cli.UsageError("--quantization_aware_epochs alone fine-tunes trained --weights; "
                             "give them, or --epochs")
    class_names = data.read_class_names(FLAGS.weights) if FLAGS.weights not in (
        None, "imagenet") else None
    train_set = load_dataset(FLAGS.data, "train", class_names)
    val_set = load_dataset(FLAGS.val_data, "val", train_set.class_names) if FLAGS.val_data \
        else None
    args = model_flags.model_args(FLAGS)
    args["num_classes"] = len(train_set.class_names)
    identity = model_flags.identity(FLAGS.model, args)
    for rate in ("learning_rate", "quantization_aware_learning_rate"):
        if not FLAGS[rate].value > 0:
            raise cli.UsageError(f"--{rate} must be above 0, got {FLAGS[rate].value:g}")
    from tfmobile.train import weights_output

    output = weights_output(FLAGS.output, identity)
    cli.quiet_tensorflow(FLAGS.verbose)
    result = train_detector(identity, train_set, val_set, epochs=FLAGS.epochs,
                            batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
                            weights=FLAGS.weights, checkpoint=output,
                            quantization_aware_epochs=FLAGS.quantization_aware_epochs,
                            quantization_aware_learning_rate=FLAGS.quantization_aware_learning_rate)
    from tfmobile_core import atomic

    classes = data.class_names_path(output)
    atomic.write_json(classes, list(train_set.class_names))
    best = (f", best validation mAP@.5 {result['best_val']:.3f} (epoch {result['best_epoch']})"
            if result.get("best_val") is not None else "")
    print(f"weights: {output} (classes: {classes}){best}")
    return 0


def train_detector(identity, train_set, val_set=None, *, epochs: int, batch_size: int,
                   learning_rate: float, weights=None, checkpoint=None, seed: int = 0,
                   progress: bool = True, quantization_aware_epochs: int = 0,
                   quantization_aware_learning_rate: float = 1e-3) -> dict:
    """Trains the detector `identity` names on `train_set` (flips and SSD random crops) and
    keeps the epoch of best validation mAP@.5 (pycocotools, on the float model); then, with
    `quantization_aware_epochs`, fine-tunes it with int8's rounding simulated (tfmobile/qat.py:
    the same twin as the classifiers', batch norm frozen) and keeps the last of those epochs.
    Returns the history of tfmobile.detection.training.fit."""
    from converters import detection
    from tfmobile import model_flags
    from tfmobile.detection import augment, families, training

    args = identity.build_args()
    model = model_flags.build_model(identity.name, weights=weights, **args)
    family = families.of(model)
    size = identity.input_size
    rng = np.random.default_rng(seed)

    def batches():
        for images, boxes, classes, _ in augment.batches(train_set, size, batch_size, rng,
                                                         augment=True, max_boxes=MAX_BOXES,
                                                         drop_remainder=True):
            yield images, boxes, classes

    val_fn = None
    if val_set is not None:
        deploy, anchors = family.deploy(model), family.anchors(model)
        postprocess = detection.PostProcess(identity.num_classes,
                                            nms_score_threshold=VAL_SCORE_THRESHOLD)

        def val_fn(_):
            return mean_ap(val_set, keras_detections(deploy, anchors, val_set, postprocess))["map_50"]

    print(f"training {identity.name} ({size} px) on {len(train_set)} images, "
          f"{len(train_set.class_names)} classes"
          + (f", validating on {len(val_set)}" if val_set is not None else ""))
    steps = max(len(train_set) // batch_size, 1)

    def loss(outputs, b, c):
        return family.loss(outputs, b, c, model)

    history = {}
    try:
        if epochs:
            history = training.fit(
                model, loss, batches, steps_per_epoch=steps, epochs=epochs,
                learning_rate=learning_rate, warmup_steps=min(steps, 100), val_fn=val_fn,
                checkpoint=checkpoint, seed=seed, progress=progress)
        if quantization_aware_epochs:
            history = quantization_aware(model, loss, batches, steps, quantization_aware_epochs,
                                         quantization_aware_learning_rate, seed, progress)
            if val_fn is not None:
                history["best_val"], history["best_epoch"] = val_fn(model), "quantization-aware"
            if checkpoint is not None:
                from tfmobile_core import atomic

                with atomic.replacing(checkpoint) as tmp:
                    model.save_weights(tmp)
    except training.TrainingDiverged as err:
        raise cli.Failure(f"training diverged: {err}") from None
    return history


def quantization_aware(model, loss, batches, steps: int, epochs: int, learning_rate: float,
                       seed: int, progress: bool) -> dict:
    """Fine-tunes `model` in place through its quantization-aware twin (tfmobile/qat.py), batch
    norm frozen in inference mode for the reason qat.fine_tune gives. SSDLite on MobileNet V3
    Small lost 3.0 points of mAP@.5 in int8 without it, 1.8 after 15 such epochs (README)."""
    from keras import layers

    from tfmobile import qat
    from tfmobile.detection import training

    twin = qat.quantization_aware(model)
    batch_norms = [la for la in model.layers if isinstance(la, layers.BatchNormalization)]
    for layer in batch_norms:
        layer.trainable = False
    try:
        print(f"quantization-aware fine-tuning: {epochs} epochs")
        return training.fit(twin, loss, batches, steps_per_epoch=steps, epochs=epochs,
                            learning_rate=learning_rate, warmup_steps=min(steps, 10), seed=seed,
                            progress=progress)
    finally:
        for layer in batch_norms:
            layer.trainable = True


# --- tfmobile.evaluate ------------------------------------------------------------------------


POSTPROCESS_OP = "TFLite_Detection_PostProcess"  # converters.detection.OP_NAME, without TF


def is_detector_file(path: str) -> bool:
    """Whether the .tflite ends in TFLite_Detection_PostProcess (a detector as deployed). Reads
    the flatbuffer only: usage errors answer before TensorFlow loads."""
    from converters import litert

    try:
        return POSTPROCESS_OP in litert.op_counts(pathlib.Path(path).read_bytes())
    except Exception:  # noqa: BLE001 - not a model: the classifier path says what is wrong
        return False


def postprocess_of(content: bytes):
    """The PostProcess whose op the .tflite carries (read from the op's own options), so that
    a float Keras reference is post-processed exactly as the artifact is."""
    from flatbuffers import flexbuffers

    from converters import detection

    _, _, options = detection.postprocess_op(content)
    values = flexbuffers.Loads(bytes(options))
    fields = {f for f in detection.PostProcess.__dataclass_fields__}
    return detection.PostProcess(**{k: v for k, v in values.items() if k in fields})


def class_names_of(content: bytes) -> tuple[str, ...] | None:
    from converters import litert
    from tfmobile_core.records import METADATA_NAME

    meta = litert.read_metadata(content, METADATA_NAME) or {}
    names = meta.get("model", {}).get("class_names")
    return tuple(names) if names else None


def evaluate_main(FLAGS) -> int:
    """mAP (pycocotools) of a detector .tflite and/or a Keras detector, and of --reference on
    the same images, with the change in points; --draw writes PNGs of their detections."""
    import json

    from tfmobile import data, model_flags

    sides = []  # (label, kind, source)
    content = None
    if FLAGS.tflite:
        content = pathlib.Path(FLAGS.tflite).read_bytes()
        sides.append((pathlib.Path(FLAGS.tflite).name, "tflite", content))
    identity = None
    if FLAGS.model:
        identity = model_flags.identity_from_flags(FLAGS)
        sides.append((f"{FLAGS.model} ({FLAGS.weights or 'random init'}, float Keras)", "keras",
                      None))
    if FLAGS.reference and FLAGS.reference != "keras":
        if not is_detector_file(FLAGS.reference):
            raise cli.UsageError(f"--reference {FLAGS.reference} is no detector (it has no "
                                 "TFLite_Detection_PostProcess op)")
        sides.append((pathlib.Path(FLAGS.reference).name, "tflite",
                      pathlib.Path(FLAGS.reference).read_bytes()))
    class_names = (class_names_of(content) if content is not None else None) or (
        identity.class_names if identity is not None else None)
    if class_names is None and FLAGS.weights and FLAGS.weights != "imagenet":
        class_names = data.read_class_names(FLAGS.weights)
    dataset = load_dataset(FLAGS.data, "val", class_names, getattr(FLAGS, "images", None))
    cli.quiet_tensorflow(FLAGS.verbose)
    postprocess = None
    if content is not None:
        postprocess = postprocess_of(content)
    results, found = [], []
    with cli.native_output_silenced(not FLAGS.verbose) as console:
        progress = cli.progress_bar(console)
        for label, kind, source in sides:
            if kind == "tflite":
                detections = tflite_detections(source, dataset, progress)
            else:
                from converters import detection
                from tfmobile.detection import families

                model = model_flags.build_model(identity.name, weights=FLAGS.weights,
                                                **identity.build_args())
                family = families.of(model)
                pp = postprocess or detection.PostProcess(identity.num_classes)
                detections = keras_detections(family.deploy(model), family.anchors(model),
                                              dataset, pp, progress)
            found.append(detections)
            results.append({"model": label, **{k: v for k, v in mean_ap(dataset, detections).items()
                                               if k != "summary"}})
    result = {**results[0], "images": len(dataset), "data": FLAGS.data,
              "skipped": dict(dataset.skipped)}
    if len(results) == 2:
        result["reference"] = results[1]
        result["change_points"] = {
            key: None if results[0][key] is None or results[1][key] is None
            else round(100 * (results[0][key] - results[1][key]), 2) for key in ("map", "map_50")}
    if FLAGS.draw:
        titles = [short_title(kind, source) for _, kind, source in sides]
        result["drawings"] = [str(p) for p in draw(FLAGS.draw, dataset, found, titles)]
    if FLAGS.json:
        print(json.dumps(result))
        return 0
    for r in results:
        print(f"{r['model']}: mAP@[.5:.95] {100 * r['map']:.1f}, mAP@.5 {100 * r['map_50']:.1f} "
              f"({r['detections']} detections)")
    if "change_points" in result:
        change = result["change_points"]
        print(f"change: mAP@[.5:.95] {change['map']:+.2f} points, mAP@.5 {change['map_50']:+.2f} "
              f"points ({results[0]['model']} against {results[1]['model']})")
    skipped = f", skipped {dataset.skipped}" if dataset.skipped else ""
    print(f"on {len(dataset)} images of {FLAGS.data} (pycocotools{skipped})")
    for path in result.get("drawings", []):
        print(f"drawing: {path}")
    return 0


DRAWN_IMAGES = 4


def short_title(kind: str, content: bytes | None) -> str:
    """A drawing's title: the model's mode, which is what the tiles are compared by."""
    if kind == "keras":
        return "float (Keras)"
    from converters import litert
    from tfmobile_core.records import METADATA_NAME

    meta = litert.read_metadata(content, METADATA_NAME) or {}
    return f"{meta.get('conversion', {}).get('mode', '')} (.tflite)".strip()


def draw(out_dir: str, dataset, found: list, labels: list[str]) -> list[pathlib.Path]:
    """One PNG per image for the first few images: each model's detections side by side, the
    ground truth dashed."""
    from tfmobile.detection import draw as draw_lib

    out = pathlib.Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cli.UsageError(f"cannot create --draw {out_dir}: {err.strerror}") from None
    written = []
    for i, sample in enumerate(list(dataset)[:DRAWN_IMAGES]):
        tiles = [draw_lib.render_detections(sample.image, d[i].boxes, d[i].classes, d[i].scores,
                                            dataset.class_names, truth_boxes=sample.boxes,
                                            truth_classes=sample.classes) for d in found]
        path = out / f"detections_{i:02d}.png"
        written.append(draw_lib.contact_sheet(tiles, path, columns=len(tiles), titles=labels))
    return written


# --- float against int8, as the tests and the fixtures' manifest measure it -------------------

# mAP counts low-scoring true positives; the deployed default (0.3) would hide them. COCO's
# own evaluations keep detections down to ~0 (the Object Detection API: 1e-8); 0.01 keeps the
# op's NMS cheap and loses nothing measurable here.
MAP_SCORE_THRESHOLD = 0.01


def float_against_int8(identity, val_set, out_dir, *, calibration_samples: int = 300,
                       progress: bool = False) -> dict:
    """Converts the detector `identity` names (its trained weights) to int8 with the
    post-processing op, and measures COCO mAP (pycocotools) of the float Keras model and of the
    int8 .tflite on `val_set`, both post-processed by the same op settings."""
    from converters import detection
    from tfmobile import artifacts, model_flags
    from tfmobile.detection import families
    from tfmobile_core.records import Conversion

    conversion = Conversion(mode="int8",
                            postprocess=(("nms_score_threshold", MAP_SCORE_THRESHOLD),))
    tflite_path, _, report = artifacts.convert_detector_model(
        identity, conversion, pathlib.Path(out_dir), calibration_samples=calibration_samples,
        progress=progress)
    model = model_flags.build_model(identity.name, weights=identity.weights,
                                    **identity.build_args())
    family = families.of(model)
    postprocess = detection.PostProcess(identity.num_classes,
                                        nms_score_threshold=MAP_SCORE_THRESHOLD)
    float_map = mean_ap(val_set, keras_detections(family.deploy(model), family.anchors(model),
                                                  val_set, postprocess))
    int8_map = mean_ap(val_set, tflite_detections(tflite_path.read_bytes(), val_set))
    keys = ("map", "map_50")
    return {"float": {k: float_map[k] for k in keys}, "int8": {k: int8_map[k] for k in keys},
            "change_points": {k: round(100 * (int8_map[k] - float_map[k]), 2) for k in keys},
            "tflite": str(tflite_path), "file_bytes": tflite_path.stat().st_size,
            "execution": report.detection["execution"],
            "fidelity": report.detection["fidelity"]}

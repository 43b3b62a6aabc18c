"""python -m tfmobile.evaluate on ImageNet-labelled photographs: the layouts it reads (synset
folders, a flat folder with a ground-truth file, file names that carry the class), the label
mapping (standard 0-based order, synset IDs, the 1001-class background shift), and the paired
statistics of a model against its float reference."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from calibration import images as images_lib
from tfmobile import data, evaluate, imagenet

pytestmark = pytest.mark.xdist_group("evaluate_imagenet")  # the module's models are made once

SYNSETS = imagenet.synsets()
PHOTOS = images_lib.embedded_paths()  # 14 real photographs


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfmobile.evaluate", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def run_json(*args) -> dict:
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_one_line(result, message: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


# --- Statistics, against published and hand-computed values -----------------------------------


def test_wilson_interval():
    assert evaluate.wilson_interval(7, 10) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    low, high = evaluate.wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-4)  # never below 0, unlike Wald's
    assert evaluate.wilson_interval(10, 10) == pytest.approx((1 - high, 1))


def test_mcnemar_exact_p():
    # 1 and 9 discordant pairs: 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024.
    assert evaluate.mcnemar_exact_p(1, 9) == 22 / 1024
    assert evaluate.mcnemar_exact_p(9, 1) == 22 / 1024
    assert evaluate.mcnemar_exact_p(0, 5) == 2 / 32
    assert evaluate.mcnemar_exact_p(3, 3) == evaluate.mcnemar_exact_p(0, 0) == 1.0
    # Cavo et al. 2012 (Fagerland, Lydersen & Laake, Statistical Analysis of Contingency
    # Tables, ch. 8): 6 and 16 discordant pairs, exact conditional p = 0.0525.
    assert evaluate.mcnemar_exact_p(6, 16) == pytest.approx(0.0525, abs=1e-4)
    assert evaluate.mcnemar_exact_p(20_000, 21_000) < 1e-5  # large counts stay exact and quick


def test_paired_difference_interval():
    # The same table: 59 both right, 6 first only, 16 second only, 80 neither; Newcombe's
    # square-and-add interval -0.1186 to -0.0046 (the book; R package contingencytables).
    assert evaluate.paired_difference_interval(59, 6, 16, 80) == pytest.approx(
        (-0.1186, -0.0046), abs=1e-4)
    low, high = evaluate.paired_difference_interval(10, 3, 3, 4)
    assert low == pytest.approx(-high) and low < 0 < high


# --- Labels: standard order, synset IDs, the 1001-class shift ----------------------------------


def test_labels_name_synsets_and_place_by_class_names():
    assert data.file_name_label("imagenet_00_243.jpg") == ("index", SYNSETS[243])
    assert SYNSETS[243] == "n02108422"  # bull mastiff, Keras's class 243
    assert data.file_name_label("cifar100_09_0.png") == ("index", SYNSETS[0])
    assert data.file_name_label("n01440764_tench.JPEG") == ("synset", "n01440764")
    assert data.file_name_label("ILSVRC2012_val_00000001_n01751748.JPEG") == ("synset", "n01751748")
    assert data.file_name_label("ILSVRC2012_val_00000001.JPEG") is None  # an image number
    assert data.file_name_label("photo_1000.jpg") is None  # no class 1000
    # caffe's val.txt labels the first validation image 65, Kaggle's CSV n01751748: one class.
    assert data.imagenet_label("65") == data.imagenet_label("n01751748") == "n01751748"
    with pytest.raises(ValueError, match="outside the standard 0-based order"):
        data.imagenet_label("1000")
    synset = data.file_name_label("imagenet_00_243.jpg")[1]
    assert imagenet.class_names(1000).index(synset) == 243
    assert imagenet.class_names(1001).index(synset) == 244  # background is class 0


def test_ground_truth_files(tmp_path):
    caffe = tmp_path / "val.txt"
    caffe.write_text("ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG,970\n"
                     "ILSVRC2012_val_00000003.JPEG\tn02108422\n")
    assert data.read_ground_truth(caffe) == {"ILSVRC2012_val_00000001.JPEG": "n01751748",
                                             "ILSVRC2012_val_00000002.JPEG": SYNSETS[970],
                                             "ILSVRC2012_val_00000003.JPEG": "n02108422"}
    kaggle = tmp_path / "LOC_val_solution.csv"
    kaggle.write_text("ImageId,PredictionString\n"
                      "ILSVRC2012_val_00008726,n02119789 255 142 454 329 n02119789 44 21 322 295\n")
    assert data.read_ground_truth(kaggle) == {"ILSVRC2012_val_00008726": "n02119789"}
    headed = tmp_path / "headed.csv"
    headed.write_text("file,label\na.jpg,3\n")
    assert data.read_ground_truth(headed) == {"a.jpg": SYNSETS[3]}
    bad = tmp_path / "bad.txt"
    bad.write_text("a.jpg 1\nb.jpg cat\n")
    with pytest.raises(data.DataError, match="line 2: label 'cat' is neither"):
        data.read_ground_truth(bad)
    bad.write_text("a.jpg 1\na.jpg 2\n")
    with pytest.raises(data.DataError, match="a.jpg is labelled twice"):
        data.read_ground_truth(bad)


# --- The CLI on constant classifiers: exact, known answers --------------------------------------


@pytest.fixture(scope="module")
def constant(tmp_path_factory):
    """.tflite classifiers whose scores ignore the image: class 243 first, then 0, 1, 2, 3 (in
    the standard order), with 1000 outputs or 1001 (background first, last in its scores); and
    one that puts class 7 first."""
    import keras

    from converters import tflite

    out = tmp_path_factory.mktemp("constant")

    def model(first: int, outputs: int):
        shift = outputs - 1000
        bias = -np.arange(outputs, dtype=np.float32) / outputs
        bias[first + shift] = 1.0
        if shift:
            bias[0] = -10.0  # background: never among the top 5
        image = keras.Input((32, 32, 3), batch_size=1)
        dense = keras.layers.Dense(outputs)
        scores = dense(keras.layers.GlobalAveragePooling2D()(image))
        net = keras.Model(image, scores)
        dense.set_weights([np.zeros((3, outputs), np.float32), bias])
        path = out / f"first{first}_{outputs}.tflite"
        path.write_bytes(tflite.convert_float(net))
        return path

    return {"1000": model(243, 1000), "1001": model(243, 1001), "7": model(7, 1000)}


def build(folder, names_and_labels):
    """The photographs copied to folder under the given names (cycling through them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names_and_labels):
        shutil.copy(PHOTOS[i % len(PHOTOS)], folder / name)
    return folder


# Four images: 243 twice, 7 and 2. The constant "243" model is right on the 243s (top-1 2/4);
# its top-5 (243, 0, 1, 2, 3) holds 243, 243 and 2 (3/4).
FOOLBOX = ["imagenet_00_243.jpg", "imagenet_01_243.jpg", "imagenet_02_7.jpg", "imagenet_03_2.jpg"]


@pytest.mark.parametrize("outputs", ["1000", "1001"])
def test_every_layout_labels_the_same_images_alike(constant, tmp_path, outputs):
    model = constant[outputs]
    layouts = {}
    layouts["file names (foolbox)"] = (build(tmp_path / "foolbox", FOOLBOX),)
    layouts["file names (synset)"] = (build(tmp_path / "synset", [
        f"{SYNSETS[i]}_photo{n}.JPEG" for n, i in enumerate((243, 243, 7, 2))]),)
    for n, i in enumerate((243, 243, 7, 2)):  # ILSVRC2012: one folder per synset
        build(tmp_path / "ilsvrc" / SYNSETS[i], [f"ILSVRC2012_val_0000000{n}.JPEG"])
    layouts["class folders"] = (tmp_path / "ilsvrc",)
    flat = build(tmp_path / "flat", [f"ILSVRC2012_val_0000000{n}.JPEG" for n in range(4)])
    (tmp_path / "val.txt").write_text("".join(
        f"ILSVRC2012_val_0000000{n}.JPEG {i}\n" for n, i in enumerate((243, 243, 7, 2))))
    layouts["labels file"] = (flat, "--labels", tmp_path / "val.txt")
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(
        f"ILSVRC2012_val_0000000{n},{SYNSETS[i]} 1 2 3 4\n" for n, i in enumerate((243, 243, 7, 2))))
    layouts["labels file (Kaggle)"] = (flat, "--labels", tmp_path / "LOC_val_solution.csv")
    for layout, args in layouts.items():
        found = run_json("--tflite", model, "--data", *args)
        assert (found["top1"], found["top5"], found["images"], found["classes"]) == (
            0.5, 0.75, 4, 3), layout
        assert found["layout"] == layout.split(" (")[0] and found["class_order"] == "imagenet"
        assert found["top1_ci"] == pytest.approx(evaluate.wilson_interval(2, 4))
        # The background class has no images, as expected: it is not listed.
        assert len(found["classes_without_images"]) == 997
        assert imagenet.BACKGROUND not in found["classes_without_images"]


def test_images_and_labels_that_do_not_meet_are_counted(constant, tmp_path):
    flat = build(tmp_path / "flat", ["a.jpg", "b.jpg", "unlabelled.jpg"])
    labels = tmp_path / "val.txt"
    labels.write_text("a.jpg 243\nb.jpg 7\ngone.jpg 2\nalso_gone.jpg 2\n")
    found = run_json("--tflite", constant["1000"], "--data", flat, "--labels", labels)
    assert (found["images"], found["unlabelled_images"], found["labels_without_image"]) == (2, 1, 2)
    assert found["top1"] == 0.5
    text = run("--tflite", constant["1000"], "--data", flat, "--labels", labels)
    assert text.returncode == 0, text.stderr
    assert "not evaluated: 1 images of" in text.stdout and "2 files --labels" in text.stdout


def test_paired_comparison_of_two_known_models(constant, tmp_path):
    """"243" against "7" on 243, 243, 7, 2: two images gained, one lost, one wrong for both,
    and never the same answer."""
    folder = build(tmp_path / "foolbox", FOOLBOX)
    found = run_json("--tflite", constant["1000"], "--reference", constant["7"], "--data", folder)
    assert (found["top1"], found["top5"]) == (0.5, 0.75)
    reference = found["reference"]
    assert reference["model"] == str(constant["7"]) and (reference["top1"], reference["top5"]) == (0.25, 0.5)
    pair = found["paired"]
    assert (pair["reference_wrong_model_right"], pair["reference_right_model_wrong"]) == (2, 1)
    assert pair["top1_difference"] == 0.25 and pair["top1_agreement"] == 0.0
    assert pair["mcnemar_p"] == 1.0  # 2 against 1: no evidence of a change
    assert pair["top1_difference_ci"] == pytest.approx(evaluate.paired_difference_interval(0, 2, 1, 1))
    text = run("--tflite", constant["1000"], "--reference", constant["7"], "--data", folder)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.strip().splitlines()
    assert len(lines) == 3 and "(reference): top-1 25.0%" in lines[1]
    assert "top-1 change +25.0 points" in lines[2] and "1 right -> wrong, 2 wrong -> right" in lines[2]
    assert "McNemar exact p = 1.000: not significant" in lines[2]


# --- Bad input: one line, exit status 2 --------------------------------------------------------


def test_devkit_ground_truth_is_refused(constant, tmp_path):
    flat = build(tmp_path / "flat", ["ILSVRC2012_val_00000001.JPEG"])
    devkit = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    devkit.write_text("490\n361\n171\n")
    assert_one_line(run("--tflite", constant["1000"], "--data", flat, "--labels", devkit),
                    "holds one number per line, as the ILSVRC2012 devkit's")


def test_a_labels_file_naming_no_image_is_refused(constant, tmp_path):
    flat = build(tmp_path / "flat", ["a.jpg"])
    labels = tmp_path / "val.txt"
    labels.write_text("ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\n")
    assert_one_line(run("--tflite", constant["1000"], "--data", flat, "--labels", labels),
                    "none of the 2 files --labels")


@pytest.mark.parametrize("names,message", [
    (["imagenet_00_243.jpg", "holiday.jpg"], "the file name holiday.jpg carries no ImageNet class"),
    (["ILSVRC2012_val_00000001.JPEG"], "the file name ILSVRC2012_val_00000001.JPEG"),
    (["imagenet_00_243.jpg", "n01440764_tench.JPEG"], "mixes file names labelled by synset ID "
                                                      "(n01440764_tench.JPEG) and by class index"),
    (["imagenet_00_243.jpg", "cifar10_00_3.png"], "holds images of other sets than ImageNet"),
])
def test_flat_names_that_carry_no_class_are_refused(constant, tmp_path, names, message):
    folder = build(tmp_path / "flat", names)
    assert_one_line(run("--tflite", constant["1000"], "--data", folder), message)


def test_a_reference_of_other_classes_is_refused(constant, tmp_path):
    folder = build(tmp_path / "foolbox", FOOLBOX)
    assert_one_line(run("--tflite", constant["1000"], "--reference", constant["1001"],
                        "--data", folder), "different numbers of classes")
    assert_one_line(run("--tflite", constant["1000"], "--reference", "keras", "--data", folder),
                    "--reference keras compares --tflite with the Keras network of --model")
    assert_one_line(run("--tflite", constant["1000"], "--reference", tmp_path / "none.tflite",
                        "--data", folder), "--reference")


# --- A trained network: float against int8, and against its Keras model ---------------------


WEIGHTS = pathlib.Path(__file__).parent / "data" / "weights" / "mobilenet_v1_0.25_48.weights.h5"
ZOO_ARGS = ["--model", "mobilenet_v1", "--alpha", "0.25", "--input_size", "48"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The fixture MobileNet V1 0.25 (trained on the 14 photograph-region classes: float and
    int8 disagree on about a fifth of the images), as a float32 and an int8 .tflite, and
    validation crops of its classes."""
    from calibration import regions

    out = tmp_path_factory.mktemp("trained")
    root = regions.build(out / "regions", train_per_class=4, val_per_class=5, seed=1)
    for mode in ([], ["--int8", "--calibration", str(root / "train"), "--calibration_samples", "32"]):
        converted = subprocess.run(
            [sys.executable, "-m", "tfmobile.convert", *ZOO_ARGS, "--weights", str(WEIGHTS), *mode,
             "--eval_samples", "4", "--output_dir", str(out)],
            capture_output=True, text=True, timeout=600)
        assert converted.returncode == 0, converted.stderr
    return root / "val", out / "mobilenet_v1_0.25_48_c14_float32.tflite", \
        out / "mobilenet_v1_0.25_48_c14_int8.tflite"


@pytest.mark.slow
def test_int8_against_float_on_photographs(trained):
    """The paired numbers are those of the two models run by hand on the same images."""
    from converters import litert

    val, float_model, int8_model = trained
    found = run_json("--tflite", int8_model, "--reference", float_model, "--data", val)
    labelled = data.load_folder(val, json.loads(WEIGHTS.with_name(
        "mobilenet_v1_0.25_48.classes.json").read_text()))
    tops = {m: np.argmax(litert.run(litert.load(m.read_bytes()), labelled.batch(48)), axis=1)
            for m in (int8_model, float_model)}
    right = {m: tops[m] == labelled.labels for m in tops}
    lost = int(np.sum(right[float_model] & ~right[int8_model]))
    gained = int(np.sum(~right[float_model] & right[int8_model]))
    assert lost and gained, "the models disagree on some images, both ways"
    pair = found["paired"]
    assert (found["images"], found["classes"], found["class_order"]) == (14 * 5, 14, "model")
    assert found["top1"] == pytest.approx(right[int8_model].mean())
    assert found["reference"]["top1"] == pytest.approx(right[float_model].mean())
    assert (pair["reference_right_model_wrong"], pair["reference_wrong_model_right"]) == (lost, gained)
    assert pair["top1_agreement"] == pytest.approx(np.mean(tops[int8_model] == tops[float_model]))
    assert pair["top1_difference"] == pytest.approx(found["top1"] - found["reference"]["top1"])
    assert pair["mcnemar_p"] == evaluate.mcnemar_exact_p(gained, lost)
    both = int(np.sum(right[float_model] & right[int8_model]))
    assert pair["top1_difference_ci"] == pytest.approx(evaluate.paired_difference_interval(
        both, gained, lost, len(labelled.labels) - both - gained - lost))


@pytest.mark.slow
def test_the_keras_model_as_the_reference(trained):
    val, float_model, _ = trained
    found = run_json("--tflite", float_model, *ZOO_ARGS, "--weights", WEIGHTS, "--reference", "keras",
                     "--data", val)
    assert found["reference"]["model"] == f"mobilenet_v1 ({WEIGHTS})"
    assert found["paired"]["top1_agreement"] == 1.0  # the float .tflite computes what Keras does
    pair = found["paired"]
    assert pair["reference_right_model_wrong"] == pair["reference_wrong_model_right"] == 0

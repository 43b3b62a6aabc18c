"""Detection data: the COCO, VOC and TFRecord readers and writers, box-preserving augmentation,
and the composed real-image detection set (calibration.detection_set)."""

import json

import numpy as np
import pytest
from PIL import Image

from calibration import detection_set
from tfmobile.detection import augment, datasets
from tfmobile.detection.datasets import DatasetError


def save_image(path, height, width, colour=(90, 120, 150)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), colour, np.uint8)).save(path)
    return path


def colour_box(image, colour):
    """The pixel box [y0, x0, y1, x1) of the pixels exactly of colour, or None."""
    mask = (image == np.asarray(colour, np.uint8)).all(axis=-1)
    if not mask.any():
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], cols[0], rows[-1] + 1, cols[-1] + 1


def pixel_box(box, height, width):
    return tuple(int(round(v)) for v in np.asarray(box, np.float64) * [height, width, height, width])


@pytest.fixture(scope="module")
def small_set():
    return datasets.composed_set(6, size=96, seed=1)


# --- COCO ---------------------------------------------------------------------------------------


def coco_file(tmp_path, annotations, images=None, categories=None, make_images=True):
    images = images if images is not None else [
        {"id": 7, "file_name": "a.jpg", "height": 40, "width": 60},
        {"id": 9, "file_name": "sub/b.png", "height": 30, "width": 20},
    ]
    categories = categories if categories is not None else [
        {"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    if make_images:
        for image in images:
            save_image(tmp_path / "images" / image["file_name"], image["height"], image["width"])
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories}))
    return path


def test_read_coco_maps_sparse_categories_and_normalizes_boxes(tmp_path):
    path = coco_file(tmp_path, [
        {"id": 1, "image_id": 7, "category_id": 18, "bbox": [6, 4, 30, 20]},
        {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 60, 40]},
        {"id": 3, "image_id": 7, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 1},
        {"id": 4, "image_id": 7, "category_id": 3, "bbox": [10, 10, 0, 5]},
    ])
    dataset = datasets.read_coco(path, tmp_path / "images")
    assert dataset.class_names == ("person", "car", "dog")  # by category id
    assert dataset.coco_category_ids == (1, 3, 18)
    assert dataset.skipped == {"crowd annotations": 1, "zero-area boxes": 1}
    first, second = dataset.samples
    assert (first.image_id, first.file, second.image_id, second.file) == (7, "a.jpg", 9, "sub/b.png")
    np.testing.assert_allclose(first.boxes, [[4 / 40, 6 / 60, 24 / 40, 36 / 60], [0, 0, 1, 1]],
                               atol=1e-7)
    assert first.classes.tolist() == [2, 0]
    assert first.boxes.dtype == np.float32 and first.classes.dtype == np.int32
    assert len(second.classes) == 0 and second.boxes.shape == (0, 4)  # a kept negative
    assert first.path is not None and first.image.shape == (40, 60, 3)  # decoded on access


def test_read_coco_with_class_names_follows_their_order(tmp_path):
    path = coco_file(tmp_path, [{"id": 1, "image_id": 7, "category_id": 18, "bbox": [6, 4, 30, 20]}])
    dataset = datasets.read_coco(path, tmp_path / "images", class_names=["car", "dog", "person", "cow"])
    assert dataset.samples[0].classes.tolist() == [1]
    assert dataset.coco_category_ids == (3, 18, 1, -1)
    with pytest.raises(DatasetError, match=r"unknown class 'dog' \(known: 'car', 'person'\)"):
        datasets.read_coco(path, tmp_path / "images", class_names=["car", "person"])


def test_read_coco_clips_within_a_pixel_and_rejects_beyond(tmp_path):
    path = coco_file(tmp_path, [{"id": 5, "image_id": 7, "category_id": 1, "bbox": [-0.6, 2, 61, 38.8]}])
    box = datasets.read_coco(path, tmp_path / "images").samples[0].boxes[0]
    np.testing.assert_allclose(box, [2 / 40, 0, 1, 1], atol=1e-7)
    path = coco_file(tmp_path, [{"id": 5, "image_id": 7, "category_id": 1, "bbox": [10, 2, 52, 10]}])
    with pytest.raises(DatasetError, match=r"annotation 5 on a\.jpg.*outside the 60x40 image") as err:
        datasets.read_coco(path, tmp_path / "images")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("case, message", [
    ("missing image", r"image file .*b\.png does not exist"),
    ("unknown category", r"category id 4 is not in 'categories'"),
    ("size disagrees", r"a\.jpg is 40x60 \(height x width\) but the annotation says 40x61"),
    ("unknown image", r"refers to image id 8"),
])
def test_read_coco_errors(tmp_path, case, message):
    images = [{"id": 7, "file_name": "a.jpg", "height": 40, "width": 60},
              {"id": 9, "file_name": "b.png", "height": 30, "width": 20}]
    annotations = [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5]}]
    for image in images:
        save_image(tmp_path / "images" / image["file_name"], image["height"], image["width"])
    if case == "missing image":
        (tmp_path / "images" / "b.png").unlink()
    elif case == "unknown category":
        annotations[0]["category_id"] = 4
    elif case == "size disagrees":
        images[0]["width"] = 61
    elif case == "unknown image":
        annotations[0]["image_id"] = 8
    path = coco_file(tmp_path, annotations, images, make_images=False)
    with pytest.raises(DatasetError, match=message):
        datasets.read_coco(path, tmp_path / "images")


def test_synthetic_set_round_trips_through_coco(tmp_path, small_set):
    datasets.write_coco(small_set, tmp_path / "train.json", images_dir=tmp_path / "train")
    back = datasets.read_coco(tmp_path / "train.json", tmp_path / "train")
    assert back.class_names == small_set.class_names
    assert back.coco_category_ids == tuple(range(1, len(small_set.class_names) + 1))
    assert [s.image_id for s in back] == [s.image_id for s in small_set]
    for original, read in zip(small_set, back, strict=True):
        np.testing.assert_allclose(read.boxes, original.boxes, atol=1e-6)
        assert read.classes.tolist() == original.classes.tolist()
        assert read.image.shape == original.image.shape
        assert np.abs(read.image.astype(int) - original.image).mean() < 4  # JPEG at quality 95


# --- TFRecord -----------------------------------------------------------------------------------


def test_synthetic_set_round_trips_through_tfrecord(tmp_path, small_set):
    datasets.write_tfrecord(small_set, tmp_path / "set.tfrecord")
    for back in (datasets.read_tfrecord(tmp_path / "set.tfrecord", class_names=small_set.class_names),
                 datasets.read_tfrecord(str(tmp_path / "*.tfrecord"), label_map=datasets.write_label_map(
                     small_set.class_names, tmp_path / "label_map.pbtxt"))):
        assert back.class_names == small_set.class_names
        assert [s.image_id for s in back] == [s.image_id for s in small_set]
        for original, read in zip(small_set, back, strict=True):
            np.testing.assert_allclose(read.boxes, original.boxes, atol=1e-6)
            assert read.classes.tolist() == original.classes.tolist()
            assert read.image.shape == original.image.shape
    # From the records alone: the classes that occur, in label id order.
    own = datasets.read_tfrecord(tmp_path / "set.tfrecord")
    present = sorted({int(c) for s in small_set for c in s.classes})
    assert own.class_names == tuple(small_set.class_names[c] for c in present)


def write_records(path, examples):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for features in examples:
            feature = {}
            for key, values in features.items():
                if isinstance(values[0], bytes):
                    feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
                elif isinstance(values[0], float):
                    feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
                else:
                    feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())
    return path


def od_example(tmp_path, **changes):
    encoded = save_image(tmp_path / "x.jpg", 50, 100).read_bytes()
    features = {"image/encoded": [encoded], "image/height": [50], "image/width": [100],
                "image/filename": [b"x.jpg"], "image/source_id": [b"42"],
                "image/object/bbox/ymin": [0.1, 0.2], "image/object/bbox/xmin": [0.1, 0.3],
                "image/object/bbox/ymax": [0.5, 0.6], "image/object/bbox/xmax": [0.4, 0.9],
                "image/object/class/label": [2, 1]}
    features.update(changes)
    return {k: v for k, v in features.items() if v is not None}


def test_read_tfrecord_od_api_records(tmp_path):
    path = write_records(tmp_path / "a.tfrecord", [od_example(
        tmp_path, **{"image/object/bbox/xmax": [0.4, 1.005], "image/object/is_crowd": [0, 0]}),
        od_example(tmp_path, **{"image/object/class/label": [1, 1],
                                "image/object/is_crowd": [1, 0],
                                "image/object/bbox/ymax": [0.5, 0.2]})])
    dataset = datasets.read_tfrecord(path, class_names=["cat", "dog"])
    first, second = dataset.samples
    assert first.image_id == 42 and first.file == "x.jpg" and first.image.shape == (50, 100, 3)
    assert first.classes.tolist() == [1, 0]  # labels are 1-based
    np.testing.assert_allclose(first.boxes, [[0.1, 0.1, 0.5, 0.4], [0.2, 0.3, 0.6, 1.0]], atol=1e-6)
    assert len(second.classes) == 0
    assert dataset.skipped == {"crowd annotations": 1, "zero-area boxes": 1}


@pytest.mark.parametrize("changes, message", [
    ({"image/object/class/label": [3, 1]}, r"label 3 is out of range"),
    ({"image/object/bbox/xmax": [0.4, 1.05]}, r"lies outside the 100x50 image"),
    ({"image/object/bbox/ymin": [0.1]}, r"1 ymin, 2 xmin, 2 ymax, 2 xmax, 2 labels"),
    ({"image/object/class/text": [b"dog", b"horse"]}, r"unknown class 'horse' \(known: 'cat', 'dog'\)"),
    ({"image/height": [51]}, r"image/height x width is 51x100 but the image is 50x100"),
    ({"image/encoded": None}, r"no image/encoded"),
])
def test_read_tfrecord_errors(tmp_path, changes, message):
    path = write_records(tmp_path / "a.tfrecord", [od_example(tmp_path, **changes)])
    with pytest.raises(DatasetError, match=message):
        datasets.read_tfrecord(path, class_names=["cat", "dog"])


def test_read_tfrecord_without_names_needs_text(tmp_path):
    path = write_records(tmp_path / "a.tfrecord", [od_example(tmp_path)])
    with pytest.raises(DatasetError, match="has no image/object/class/text; give class_names"):
        datasets.read_tfrecord(path)
    with pytest.raises(DatasetError, match="no TFRecord file matches"):
        datasets.read_tfrecord(tmp_path / "missing-*.tfrecord")


# --- Pascal VOC ---------------------------------------------------------------------------------


def voc_xml(filename, objects, size=(40, 60)):
    parts = [f"<annotation><filename>{filename}</filename>"
             f"<size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>"]
    for name, box, difficult in objects:
        parts.append(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>"
                     f"<xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax>"
                     f"<ymax>{box[3]}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def voc_root(tmp_path, objects_b=None):
    root = tmp_path / "VOC"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    save_image(root / "JPEGImages" / "000001.jpg", 40, 60)
    save_image(root / "JPEGImages" / "000002.jpg", 40, 60)
    (root / "Annotations" / "000001.xml").write_text(voc_xml("000001.jpg", [
        ("person", (1, 1, 60, 40), 0), ("dog", (11, 5, 30, 20), 1), ("car", (5, 5, 4, 9), 0)]))
    (root / "Annotations" / "000002.xml").write_text(voc_xml("000002.jpg", objects_b or [
        ("dog", (31, 11, 50, 30), 0)]))
    (root / "ImageSets" / "Main" / "val.txt").write_text("000002\n")
    return root


def test_read_voc_layout_difficult_and_split(tmp_path):
    root = voc_root(tmp_path)
    dataset = datasets.read_voc(root)
    assert dataset.class_names == ("car", "dog", "person")
    assert dataset.skipped == {"difficult objects": 1, "zero-area boxes": 1}
    first, second = dataset.samples
    np.testing.assert_allclose(first.boxes, [[0, 0, 1, 1]], atol=1e-7)  # 1-based, inclusive
    assert first.classes.tolist() == [2]
    np.testing.assert_allclose(second.boxes, [[10 / 40, 30 / 60, 30 / 40, 50 / 60]], atol=1e-7)
    val = datasets.read_voc(root, split="val", class_names=["person", "dog", "car"])
    assert [s.file for s in val] == ["000002.jpg"] and val.samples[0].classes.tolist() == [1]
    with pytest.raises(DatasetError, match=r"split file .*test\.txt does not exist"):
        datasets.read_voc(root, split="test")


@pytest.mark.parametrize("objects, message", [
    ([("dog", (31, 11, 63, 30), 0)], r"000002\.xml: object 'dog' \(xmin 31.*outside the 60x40 image"),
    ([("horse", (31, 11, 50, 30), 0)], r"unknown class 'horse'"),
])
def test_read_voc_errors(tmp_path, objects, message):
    with pytest.raises(DatasetError, match=message):
        datasets.read_voc(voc_root(tmp_path, objects), class_names=["car", "dog", "person"])


def test_read_voc_missing_image(tmp_path):
    root = voc_root(tmp_path)
    (root / "JPEGImages" / "000002.jpg").unlink()
    with pytest.raises(DatasetError, match=r"image file .*000002\.jpg does not exist"):
        datasets.read_voc(root)


def test_sample_rejects_unnormalized_boxes():
    image = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(DatasetError, match="normalized"):
        datasets.DetectionSample(image, [[0, 0, 5, 5]], [0])
    with pytest.raises(DatasetError, match="class id 3 but only 2 class names"):
        datasets.DetectionSet([datasets.DetectionSample(image, [[0, 0, 1, 1]], [3])], ("a", "b"))


# --- augmentation -------------------------------------------------------------------------------

RED, BLUE = (220, 30, 30), (30, 40, 230)


def two_rectangles():
    """A 60x80 grey image with a red and a blue rectangle, and their boxes and classes."""
    image = np.full((60, 80, 3), 120, np.uint8)
    image[10:30, 20:50] = RED
    image[35:55, 60:78] = BLUE
    boxes = np.array([[10 / 60, 20 / 80, 30 / 60, 50 / 80], [35 / 60, 60 / 80, 55 / 60, 78 / 80]],
                     np.float32)
    return image, boxes, np.array([0, 1], np.int32)


def test_flip_keeps_boxes_on_their_pixels():
    image, boxes, _ = two_rectangles()
    flipped, flipped_boxes = augment.flip_horizontal(image, boxes)
    for box, colour in zip(flipped_boxes, (RED, BLUE), strict=True):
        assert pixel_box(box, 60, 80) == colour_box(flipped, colour)


def test_random_crop_keeps_boxes_on_their_pixels():
    image, boxes, classes = two_rectangles()
    cropped_count = kept_partial = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        out, out_boxes, out_classes = augment.random_crop(image, boxes, classes, rng)
        out, out_boxes = augment.random_flip(out, out_boxes, rng)
        h, w = out.shape[:2]
        cropped_count += (h, w) != (60, 80)
        assert 0 < len(out_classes), "a crop must keep an object (it is chosen to cover one)"
        for box, cls in zip(out_boxes, out_classes, strict=True):
            colour = (RED, BLUE)[cls]
            # The box bounds exactly the object's pixels left in the crop.
            assert pixel_box(box, h, w) == colour_box(out, colour), seed
            kept_partial += pixel_box(box, h, w) != pixel_box(boxes[cls], h, w)
        for cls in set(range(2)) - set(out_classes.tolist()):
            # A dropped object keeps less than half of itself in each direction.
            found = colour_box(out, (RED, BLUE)[cls])
            if found is not None:
                y0, x0, y1, x1 = found
                full = boxes[cls] * [60, 80, 60, 80]
                assert (y1 - y0) < (full[2] - full[0]) / 2 + 1 or (x1 - x0) < (full[3] - full[1]) / 2 + 1
    assert cropped_count > 150 and kept_partial > 0


def test_crop_drops_boxes_whose_centre_is_outside():
    image, boxes, classes = two_rectangles()
    out, out_boxes, out_classes = augment.crop(image, boxes, classes, top=0, left=0, height=40, width=40)
    assert out.shape == (40, 40, 3) and out_classes.tolist() == [0]
    np.testing.assert_allclose(out_boxes, [[10 / 40, 20 / 40, 30 / 40, 1.0]])


def test_resize_and_network_input():
    image, boxes, _ = two_rectangles()
    resized, same = augment.resize(image, boxes, 32)
    assert resized.shape == (32, 32, 3) and same is not None and np.array_equal(same, boxes)
    x = augment.to_network_input(np.array([[[[0, 255, 127.5]]]], np.float32).astype(np.uint8))
    assert x.dtype == np.float32 and x.min() == -1 and x.max() == 1


def test_batches_pad_and_repeat_for_a_seed(small_set):
    def run(seed):
        return list(augment.batches(small_set, 64, 4, np.random.default_rng(seed), max_boxes=6))

    first, again = run(3), run(3)
    assert [b[0].shape for b in first] == [(4, 64, 64, 3), (2, 64, 64, 3)]
    for a, b in zip(first, again, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    images, boxes, classes, counts = first[0]
    assert images.dtype == np.float32 and -1 <= images.min() and images.max() <= 1
    assert boxes.shape == (4, 6, 4) and classes.shape == (4, 6) and classes.dtype == np.int32
    for row, count in enumerate(counts):
        assert (classes[row, count:] == -1).all() and (boxes[row, count:] == 0).all()
        assert (classes[row, :count] >= 0).all()
    plain = list(augment.batches(small_set, 96, 6, np.random.default_rng(0), augment=False))
    np.testing.assert_allclose(plain[0][1][0, :len(small_set[0].classes)], small_set[0].boxes)
    with pytest.raises(DatasetError, match="raise max_boxes"):
        list(augment.batches(small_set, 64, 6, np.random.default_rng(0), augment=False, max_boxes=0))


# --- the composed detection set ------------------------------------------------------------------


def test_composed_set_is_deterministic_per_seed_split_and_index():
    a = datasets.composed_set(4, size=96, seed=5)
    b = datasets.composed_set(6, size=96, seed=5)
    for x, y in zip(a, b.samples[:4], strict=True):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.boxes, y.boxes)
    other = datasets.composed_set(4, size=96, seed=6)
    val = datasets.composed_set(4, size=96, seed=5, split="val")
    assert not any(np.array_equal(x.image, y.image) for x, y in zip(a, other, strict=True))
    assert not any(np.array_equal(x.image, y.image) for x, y in zip(a, val, strict=True))
    assert a.class_names == detection_set.CLASS_NAMES


def test_composed_boxes_bound_exactly_the_pasted_pixels():
    size, shrunk = 128, 0
    for index in range(40):
        composite = detection_set.compose(index, size=size, seed=2)
        assert 1 <= len(composite.classes) <= 4
        covered = np.zeros((size, size), bool)
        for box, visible, share in zip(composite.boxes, composite.canvas.visible,
                                       composite.canvas.shares(), strict=True):
            y0, x0, y1, x1 = pixel_box(box, size, size)
            seen = visible > 0
            assert seen[y0:y1, x0:x1].sum() == seen.sum()  # nothing of the object outside
            assert seen[y0].any() and seen[y1 - 1].any() and seen[:, x0].any() and seen[:, x1 - 1].any()
            assert share >= detection_set.MIN_VISIBLE
            covered |= seen
        shrunk += int((np.abs(composite.boxes - composite.pasted) > 1e-6).any(axis=1).sum())
        # Every pixel no object reaches is the background's, untouched.
        background = detection_set._background(
            np.random.default_rng([2, 0, index]), size, "train")
        np.testing.assert_array_equal(composite.image[~covered], background[~covered])
    assert shrunk > 0  # some boxes were cut down to their visible part


def test_occlusion_shrinks_boxes_and_refuses_hiding_pastes():
    canvas = detection_set.Canvas(np.zeros((100, 100, 3), np.float32))
    square, tall = detection_set._alpha(40, 40, "rect"), detection_set._alpha(60, 40, "rect")
    canvas.paste(np.full((40, 40, 3), 255, np.float32), square, 10, 10)
    assert canvas.fits(tall, 0, 30)  # covers half of the first, less the feathered edge
    canvas.paste(np.full((60, 40, 3), 128, np.float32), tall, 0, 30)
    first, second = (pixel_box(b, 100, 100) for b in canvas.boxes())
    assert second == (0, 30, 60, 70)
    # The first's visible part: up to the second's feathered edge (alpha 0.25, 0.75 at x 30, 31).
    assert first == (10, 10, 50, 32)
    assert canvas.image()[30, 31].tolist() == [160] * 3  # 255 * 0.25 + 128 * 0.75, rounded
    assert not canvas.fits(tall, 0, 14)  # would leave the first under 40% visible
    assert not canvas.fits(square, 75, 75)  # itself mostly outside the frame
    shares = canvas.shares()
    assert shares[1] == pytest.approx(1.0) and 0.4 < shares[0] < 0.6


def test_cli_writes_coco_sets(tmp_path):
    out = tmp_path / "set"
    detection_set.main([str(out), "--train", "3", "--val", "2", "--size", "64"])
    train = datasets.read_coco(out / "train.json", out / "train")
    val = datasets.read_coco(out / "val.json", out / "val")
    assert (len(train), len(val)) == (3, 2) and train.class_names == detection_set.CLASS_NAMES
    np.testing.assert_allclose(train.samples[0].boxes, detection_set.build(1, 64).boxes[0],
                               atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no temporary directory left
    with pytest.raises(SystemExit) as exit_info:
        detection_set.main([str(out), "--train", "1", "--val", "1"])
    assert exit_info.value.code == 1

"""Calibration sources: every supported kind, real images, and what is skipped."""

import io

import numpy as np
import pytest
from PIL import Image

from calibration import images, sources
from calibration.preprocess import Preprocessing


def save(image: Image.Image, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


@pytest.fixture
def photo():
    return Image.open(images.embedded_paths()[0]).convert("RGB")  # a real photograph


def test_directory_is_searched_recursively_in_every_format(tmp_path, photo):
    save(photo, tmp_path / "a.jpg")
    save(photo, tmp_path / "sub" / "b.PNG")
    save(photo, tmp_path / "sub" / "deeper" / "c.bmp")
    save(photo.convert("P"), tmp_path / "d.gif")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    loaded = sources.load(str(tmp_path))
    assert loaded.kind == "directory" and len(loaded.images) == 4
    assert loaded.skipped == 1 and loaded.skipped_examples[0].endswith("broken.jpg")
    assert all(im.dtype == np.uint8 and im.shape[2] == 3 for im in loaded.images)


def test_exif_orientation_grayscale_and_rgba_become_upright_rgb(tmp_path, photo):
    rotated = photo.crop((0, 0, 300, 200))  # landscape pixels...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...that the camera says to show rotated 90 degrees: portrait
    save(rotated, tmp_path / "phone.jpg", exif=exif)
    save(photo.convert("L"), tmp_path / "gray.png")
    rgba = photo.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: composited on black
    save(rgba, tmp_path / "clear.png")
    by_name = dict(zip(["clear", "gray", "phone"], sources.load(str(tmp_path)).images, strict=True))
    assert by_name["phone"].shape == (300, 200, 3)
    gray = by_name["gray"]
    assert gray.shape[2] == 3 and np.array_equal(gray[..., 0], gray[..., 2])
    assert by_name["clear"].max() == 0


def test_arrays_and_tfrecords(tmp_path, photos):
    batch = np.stack([np.asarray(Image.fromarray(p).resize((64, 48))) for p in photos[:5]])
    np.save(tmp_path / "x.npy", batch)
    np.savez(tmp_path / "x.npz", images=batch[..., 0])  # grayscale N x H x W
    assert len(sources.load(str(tmp_path / "x.npy")).images) == 5
    gray = sources.load(str(tmp_path / "x.npz")).images
    assert gray[0].shape == (48, 64, 3)

    import tensorflow as tf

    path = tmp_path / "images.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for p in photos[:3]:
            encoded = io.BytesIO()
            Image.fromarray(p).save(encoded, format="JPEG")
            feature = {"image/encoded": tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[encoded.getvalue()]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        writer.write(b"not an image at all")
    loaded = sources.load(str(path))
    assert (len(loaded.images), loaded.skipped) == (3, 1)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: d / "missing", "does not exist"),
        (lambda d: d, "holds no decodable image"),  # an empty directory
        (lambda d: (d / "bad.npy").write_bytes(b"junk") and d / "bad.npy", "cannot read"),
        (lambda d: (d / "x.txt").write_text("hi") and d / "x.txt", "is not a directory, .npy"),
    ],
)
def test_unusable_sources_are_refused(tmp_path, make, message):
    with pytest.raises(sources.SourceError, match=message):
        sources.load(str(make(tmp_path)))


def test_embedded_set_splits_and_expands_deterministically():
    embedded = sources.load(None)
    calibration, held_out = embedded.split()
    assert len(calibration) + len(held_out) == len(embedded.images) == 14
    assert {id(im) for im in calibration}.isdisjoint(id(im) for im in held_out)
    first, second = sources.expand(calibration, 40), sources.expand(calibration, 40)
    assert len(first) == 40 and all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert any(a.shape != b.shape for a, b in zip(first[11:], calibration, strict=True))  # crops, not copies
    batch = Preprocessing(96).batch(first)
    assert batch.shape == (40, 96, 96, 3) and -1 <= batch.min() and batch.max() <= 1

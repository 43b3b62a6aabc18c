"""Every network converts to a static-shape float TFLite model that LiteRT runs like Keras."""

import numpy as np
import pytest

from converters import litert, tflite
from tfmobile import models

from helpers import randomize
from test_zoo import ALL_VARIANTS

DYNAMIC_SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK"}


@pytest.mark.parametrize("name,args", ALL_VARIANTS, ids=lambda v: str(v))
def test_float_tflite_runs_in_litert_like_keras(name, args, photo_batch):
    model = randomize(
        models.build(name, input_size=96, num_classes=10, classifier_activation=None, **args)
    )
    content = tflite.convert_float(model)
    ops = litert.op_counts(content)
    assert not DYNAMIC_SHAPE_OPS & set(ops), ops
    assert max(litert.tensor_ranks(content)) <= 4  # 5-D channel shuffles would show here
    interpreter = litert.load(content)
    assert tuple(interpreter.get_input_details()[0]["shape"]) == (1, 96, 96, 3)
    images = photo_batch(96)[:4]
    expected = model.predict(images, verbose=0)
    got = litert.run(interpreter, images)
    assert np.abs(expected).std() > 0.05  # logits that carry signal
    # float32 in both; XNNPACK orders its sums differently from TensorFlow.
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())


@pytest.mark.parametrize("mode", ["float16", "dynamic"])
def test_reduced_precision_float_modes_run(mode, photo_batch):
    model = randomize(
        models.build("mobilenet_v2", alpha=0.35, input_size=96, classifier_activation=None)
    )
    float32 = tflite.convert_float(model)
    reduced = tflite.convert_float(model, mode)
    assert len(reduced) < 0.6 * len(float32)  # weights stored in 16 or 8 bits
    images = photo_batch(96)[:2]
    got = litert.run(litert.load(reduced), images)
    expected = model.predict(images, verbose=0)
    # Still the same classifier: the top classes agree with the float32 model.
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of float32, float16, dynamic"):
        tflite.convert_float(models.build("fd_mobilenet", alpha=0.25, input_size=32), "int4")

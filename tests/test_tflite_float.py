"""Every network converts to a static-shape float TFLite model that LiteRT runs like Keras."""

import numpy as np
import pytest

from converters import litert, report, rewrite, tflite
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
    assert report.execution(interpreter)["partitions"] == 1  # the whole graph in XNNPACK
    images = photo_batch(96)[:4]
    expected = model.predict(images, verbose=0)
    got = litert.run(interpreter, images)
    assert np.abs(expected).std() > 0.05  # logits that carry signal
    # float32 in both; XNNPACK orders its sums differently from TensorFlow.
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())


@pytest.mark.parametrize("name", models.available())
def test_float16_and_dynamic_models_run_as_one_xnnpack_partition(name, photo_batch):
    """Smaller files, the same classifier, and the whole graph in XNNPACK. Dynamic range needs
    its depthwise filters in float (rewrite.float_depthwise_weights): XNNPACK has no
    int8-weight depthwise kernel, and each one split the graph."""
    model = randomize(models.build(name, alpha=0.5, input_size=64, num_classes=10,
                                   classifier_activation=None))
    float32 = tflite.convert_float(model)
    hybrid = tflite.convert_float(model, "dynamic")
    dynamic, changed = rewrite.float_depthwise_weights(hybrid)
    # Filters under 1024 weights are never quantized (the converter's threshold); each int8 one
    # was outside the delegate.
    assert report.execution(litert.load(hybrid))["ops_outside_delegate"] == (
        {"DEPTHWISE_CONV_2D": changed} if changed else {})
    images = photo_batch(64)[:2]
    expected = model.predict(images, verbose=0).argmax(axis=1)
    for reduced in (tflite.convert_float(model, "float16"), dynamic):
        assert len(reduced) < 0.6 * len(float32)  # weights stored in 16 or 8 bits
        interpreter = litert.load(reduced)
        assert report.execution(interpreter) == {
            "delegate": "XNNPACK", "partitions": 1, "ops_outside_delegate": {}}
        assert (litert.run(interpreter, images).argmax(axis=1) == expected).all()


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of float32, float16, dynamic"):
        tflite.convert_float(models.build("fd_mobilenet", alpha=0.25, input_size=32), "int4")

"""Every network converts to a static-shape float TFLite model that LiteRT runs like Keras."""

import numpy as np
import pytest

from converters import fidelity, litert, report, rewrite, tflite
from tfmobile import models
from tfmobile_core.records import Execution

from helpers import randomize
from test_zoo import ALL_VARIANTS

DYNAMIC_SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK"}
# Converting is slow (20-40 s a network): ShuffleNet V1 with 2 or 4 groups and V2 at 1.5x add
# no op or tensor shape that groups 1 and 8, and widths 0.5x and 2x, do not already have.
CONVERTED_VARIANTS = [variant for variant in ALL_VARIANTS if variant not in (
    ("shufflenet_v1", {"groups": 2}), ("shufflenet_v1", {"groups": 4}),
    ("shufflenet_v2", {"alpha": 1.5}))]


@pytest.mark.slow
@pytest.mark.parametrize("name,args", CONVERTED_VARIANTS, ids=lambda v: str(v))
def test_float_tflite_runs_in_litert_like_keras(name, args, photo_batch, tmp_path):
    model = randomize(
        models.build(name, input_size=96, num_classes=10, classifier_activation=None, **args)
    )
    tflite.export_saved_model(model, str(tmp_path))  # once for every float mode below
    content = tflite.convert_saved_model(str(tmp_path))
    ops = litert.op_counts(content)
    assert not DYNAMIC_SHAPE_OPS & set(ops), ops
    assert max(litert.tensor_ranks(content)) <= 4  # 5-D channel shuffles would show here
    interpreter = litert.load(content)
    assert tuple(interpreter.get_input_details()[0]["shape"]) == (1, 96, 96, 3)
    assert report.execution(interpreter).partitions == 1  # the whole graph in XNNPACK
    images = photo_batch(96)[:4]
    expected = model.predict(images, verbose=0)
    got = litert.run(interpreter, images)
    assert np.abs(expected).std() > 0.05  # logits that carry signal
    # float32 in both; XNNPACK orders its sums differently from TensorFlow.
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())
    # Every converted variant, in the reduced-precision modes too (the README's claim).
    check_float16_and_dynamic(str(tmp_path), content, images, expected)


# Logits against the float Keras model's. Random weights leave near-tied logits whose top-1 can
# flip on a 0.01 error, so the signal-to-noise ratio is checked (measured at 96 px: float16
# 60-68 dB, dynamic 29-40 dB; wrong weights or a broken rewrite give near 0 dB).
MIN_SQNR_DB = {"float16": 50.0, "dynamic": 20.0}


def check_float16_and_dynamic(saved_model: str, float32: bytes, images, expected):
    """Smaller files, the same logits, and the whole graph in XNNPACK. Dynamic range needs
    its depthwise filters in float (rewrite.float_depthwise_weights): XNNPACK has no
    int8-weight depthwise kernel, and each one split the graph."""
    hybrid = tflite.convert_saved_model(saved_model, "dynamic")
    dynamic, changed = rewrite.float_depthwise_weights(hybrid)
    # Filters under 1024 weights are never quantized (the converter's threshold); each int8 one
    # was outside the delegate.
    assert report.execution(litert.load(hybrid)).ops_outside_delegate == (
        {"DEPTHWISE_CONV_2D": changed} if changed else {})
    for mode, reduced in (("float16", tflite.convert_saved_model(saved_model, "float16")),
                          ("dynamic", dynamic)):
        assert len(reduced) < 0.6 * len(float32)  # weights stored in 16 or 8 bits
        interpreter = litert.load(reduced)
        assert report.execution(interpreter) == Execution(partitions=1, ops_outside_delegate={})
        sqnr = fidelity.compare(expected, litert.run(interpreter, images))["sqnr_db"]
        assert sqnr > MIN_SQNR_DB[mode], (mode, sqnr)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of float32, float16, dynamic"):
        tflite.convert_float(models.build("fd_mobilenet", alpha=0.25, input_size=32), "int4")

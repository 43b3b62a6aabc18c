"""Which TFLite operator versions edgetpu_compiler 16.0 reads, and which it maps.

A .tflite names each operator by builtin code and version. The compiler loads the model in the
TFLite it was built with: an (op, version) that TFLite did not register yet makes it refuse the
whole model ("Didn't find op for builtin opcode 'X' version 'N' ... Model could not be parsed").
Which TFLite that is, is not published; the evidence (tests/data/edgetpu/SOURCES.md) brackets it:

  * refused by 16.0: QUANTIZE v3 (first shipped in TF 2.7.0, google-coral/edgetpu#879), CONV_2D v6
    (2.9.0, #631), TRANSPOSE_CONV v4 (2.13.0, #845), EXP v2 (2.12.0, google-coral/libedgetpu#71);
  * read by 16.0: FILL v3 (2.5.0), which compiler 15 refused (#434); libedgetpu's release of the
    same month (grouper, July 2021) pins TF 2.5.0.

So versions first shipped in TF 2.5.0 or earlier are read, 2.7.0 or later refused, and 2.6.0 is
unknown. When each version first shipped is TFLite's own table (runtime_version.cc), which the
converter also sums up as the model's `min_runtime_version` metadata; below is its part for the
ops the Edge TPU maps and the CPU ops found around them.
"""

from __future__ import annotations

COMPILER = "16.0.384591198"
READ_UP_TO = (2, 5, 0)  # the newest release whose op versions compiler 16.0 is known to read
REFUSED_FROM = (2, 7, 0)  # the oldest release one of whose op versions it is known to refuse

# Builtin -> the TF release each version (1, 2, ...) first shipped in (runtime_version.cc).
FIRST_RELEASE: dict[str, tuple[str, ...]] = {
    "ADD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0", "2.13.0", "2.23.0"),
    "AVERAGE_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "BATCH_MATMUL": ("2.3.0", "2.3.0", "2.4.0", "2.5.0"),
    "CONCATENATION": ("1.5.0", "1.14.0", "2.3.0", "2.14.0", "2.21.0", "2.23.0", "2.23.0"),
    "CONV_2D": ("1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.4.0", "2.9.0", "2.11.0", "2.15.0"),
    "DEPTHWISE_CONV_2D": ("1.5.0", "1.12.0", "1.14.0", "2.2.0", "2.3.0", "2.3.0", "2.11.0"),
    "DEPTH_TO_SPACE": ("2.1.0", "2.5.0"),
    "DEQUANTIZE": ("1.13.1", "1.14.0", "1.15.0", "2.2.0", "2.7.0", "2.18.0", "2.21.0", "2.22.0",
                   "2.23.0"),
    "EXP": ("1.7.0", "2.12.0"),
    "EXPAND_DIMS": ("1.10.0",),
    "FULLY_CONNECTED": ("1.5.0", "1.10.0", "1.14.0", "1.14.0", "2.0.0", "2.1.0", "2.3.0", "2.3.0",
                        "2.3.0", "2.11.0", "2.15.0", "2.17.0", "2.18.0", "2.21.0"),
    "GATHER": ("1.6.0", "1.14.0", "1.15.0", "2.4.0", "2.5.0", "2.13.0", "2.15.0", "2.23.0"),
    "HARD_SWISH": ("1.15.0",),
    "L2_NORMALIZATION": ("1.5.0", "1.14.0"),
    "LEAKY_RELU": ("1.13.1", "2.3.0"),
    "LOG": ("1.14.0", "2.15.0"),
    "LOGISTIC": ("1.14.0", "1.14.0", "2.3.0"),
    "LSTM": ("1.7.0", "1.10.0", "1.14.0", "2.3.0"),
    "MAXIMUM": ("1.14.0", "1.14.0", "2.3.0", "2.3.0"),
    "MAX_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "MEAN": ("1.6.0", "1.14.0", "2.4.0"),
    "MINIMUM": ("1.14.0", "1.14.0", "2.3.0", "2.3.0"),
    "MUL": ("1.5.0", "1.14.0", "1.15.0", "2.3.0", "2.6.0", "2.11.0", "2.13.0", "2.23.0"),
    "PACK": ("1.11.0", "1.14.0", "2.3.0", "2.13.0", "2.23.0"),
    "PAD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0", "2.20.0", "2.23.0"),
    "PADV2": ("1.9.0", "1.14.0", "2.4.0", "2.6.0", "2.20.0", "2.23.0"),
    "PRELU": ("1.8.0",),
    "QUANTIZE": ("1.14.0", "1.15.0", "2.7.0", "2.21.0", "2.21.0", "2.21.0"),
    "REDUCE_MAX": ("1.11.0", "1.14.0", "2.5.0"),
    "REDUCE_MIN": ("1.11.0", "1.14.0", "2.5.0"),
    "RELU": ("1.5.0", "2.1.0", "2.5.0"),
    "RELU6": ("1.5.0", "1.14.0", "2.5.0"),
    "RELU_N1_TO_1": ("1.5.0",),
    "RESHAPE": ("1.5.0",),
    "RESIZE_BILINEAR": ("1.7.0", "1.14.0", "2.2.0", "2.5.0"),
    "RESIZE_NEAREST_NEIGHBOR": ("1.13.1", "1.14.0", "2.3.0", "2.4.0"),
    "RSQRT": ("1.10.0", "2.5.0", "2.15.0"),
    "SLICE": ("1.14.0", "1.14.0", "1.14.0", "2.4.0", "2.5.0", "2.14.0", "2.21.0", "2.23.0"),
    "SOFTMAX": ("1.5.0", "1.14.0", "2.3.0", "2.23.0"),
    "SPACE_TO_DEPTH": ("1.5.0", "1.14.0"),
    "SPLIT": ("1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.23.0"),
    "SPLIT_V": ("1.13.1", "2.3.0", "2.23.0"),
    "SQUARED_DIFFERENCE": ("1.13.1", "2.5.0"),
    "SQUEEZE": ("1.6.0", "2.5.0"),
    "STRIDED_SLICE": ("1.6.0", "1.14.0", "2.1.0", "2.2.0", "2.5.0", "2.6.0", "2.14.0", "2.14.0"),
    "SUB": ("1.6.0", "1.14.0", "2.3.0", "2.4.0", "2.4.0"),
    "SUM": ("1.10.0", "1.15.0"),
    "TANH": ("1.14.0", "1.14.0", "2.3.0"),
    "TILE": ("1.10.1", "2.2.0", "2.8.0"),
    "TRANSPOSE": ("1.6.0", "1.14.0", "1.15.0", "2.3.0", "2.4.0", "2.12.0", "2.14.4", "2.22.0",
                  "2.23.0"),
    "TRANSPOSE_CONV": ("1.9.0", "2.2.0", "2.3.0", "2.13.0", "2.15.0"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("1.13.1", "1.14.0", "2.3.0", "2.12.0"),
}

# Versions the compiler reads but does not map: its log says "Operation version not supported"
# for RESIZE_* version 3 (half_pixel_centers, or align_corners for nearest neighbour), with the
# rest of the model compiled (google-coral/edgetpu#187 = tiny_yolo_edgetpu.log, #396, #420;
# compilers 14.1 and 15.0; a user mapped it by writing half_pixel_centers=False). Whether 16.0
# maps them is not published: no later compiler changelog mentions resizes.
MAPPED_UP_TO = {"RESIZE_BILINEAR": 2, "RESIZE_NEAREST_NEIGHBOR": 2}


def release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def first_release(op: str, version: int) -> str | None:
    """The TF release `op` version `version` first shipped in (None where not tabled)."""
    known = FIRST_RELEASE.get(op, ())
    return known[version - 1] if 1 <= version <= len(known) else None


def readable(shipped: str) -> bool | None:
    """Whether compiler 16.0 reads an op version first shipped in TF `shipped`: True, False, or
    None in between (2.6.0)."""
    if release(shipped) <= READ_UP_TO:
        return True
    return False if release(shipped) >= REFUSED_FROM else None

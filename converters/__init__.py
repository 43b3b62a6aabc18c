"""Converter stage: Keras model -> .tflite (float32, float16, dynamic range; full int8 with a
calibration set) and what the LiteRT interpreter makes of the result."""

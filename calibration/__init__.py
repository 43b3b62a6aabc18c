"""Calibration stage: real images, decoded and preprocessed the way each model is evaluated."""

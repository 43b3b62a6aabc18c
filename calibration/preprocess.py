"""A model's evaluation preprocessing: resize the shorter side, centre crop, scale to [-1, 1].

The zoo's models (like the Keras MobileNets they match) take RGB in [-1, 1]; the crop keeps
87.5% of the shorter side, the usual ImageNet evaluation (256 -> 224).
"""

from __future__ import annotations

import dataclasses

import numpy as np

MAX_RESIZED_SIDE = 8  # longer resized side, in input sizes, above which only the crop is resized


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    input_size: int
    crop_fraction: float = 0.875
    scale: float = 1 / 127.5  # uint8 -> [-1, 1]: x * scale + offset
    offset: float = -1.0
    resample: str = "bilinear"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """One HxWx3 uint8 image -> input_size x input_size x 3 float32."""
        from PIL import Image

        height, width = image.shape[:2]
        short = self.input_size / self.crop_fraction
        ratio = short / min(height, width)
        size = (max(self.input_size, round(width * ratio)), max(self.input_size, round(height * ratio)))
        left = (size[0] - self.input_size) // 2
        top = (size[1] - self.input_size) // 2
        if max(size) > MAX_RESIZED_SIDE * self.input_size:
            # A strip (1 x 100000 pixels) would resize to gigabytes: resize only what the
            # centre crop keeps (the same pixels, to rounding).
            sx, sy = width / size[0], height / size[1]
            box = (left * sx, top * sy, (left + self.input_size) * sx,
                   (top + self.input_size) * sy)
            crop = Image.fromarray(image).resize((self.input_size, self.input_size),
                                                 Image.Resampling.BILINEAR, box=box)
            return np.asarray(crop, np.float32) * self.scale + self.offset
        resized = Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)
        crop = resized.crop((left, top, left + self.input_size, top + self.input_size))
        return np.asarray(crop, np.float32) * self.scale + self.offset

    def batch(self, images) -> np.ndarray:
        return np.stack([self(image) for image in images])

    def describe(self) -> dict:
        return dataclasses.asdict(self)

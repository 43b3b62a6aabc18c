"""A small real labelled image set built offline from the embedded photographs.

Each photograph is a class; training crops come from its left 70% and validation crops from its
right 30%, so no validation pixel was seen in training. Textures (brick, grass, gravel),
grayscale scenes and colour photographs make a task a small CNN learns in minutes without
reaching 100%: enough to see whether int8 conversion costs accuracy.

  python -m calibration.regions OUT_DIR   # writes OUT_DIR/train/<class>/*.jpg and OUT_DIR/val/...
  python -m calibration.regions OUT_DIR --train_per_class 40 --val_per_class 200 --seed 0

The crops are drawn from one random stream in a fixed order: the same counts and seed give the
same crops (tests/data/weights were trained on the set of the second line).
"""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

from calibration import arguments, images as images_lib

SPLIT = 0.7  # share of each photograph's width that training crops come from


def _crop(image, rng, x_lo, x_hi):
    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(0.2, 0.3))
    side = min(side, x_hi - x_lo)
    x = int(rng.integers(x_lo, x_hi - side + 1))
    y = int(rng.integers(0, h - side + 1))
    return image[y:y + side, x:x + side]


def build(out_dir, train_per_class: int = 60, val_per_class: int = 20,
          seed: int = 0) -> pathlib.Path:
    """Writes the set as JPEG files, one folder per class, and returns out_dir."""
    out = pathlib.Path(out_dir)
    rng = np.random.default_rng(seed)
    for path in images_lib.embedded_paths():
        image = images_lib.decode(path)
        w = image.shape[1]
        cut = int(w * SPLIT)
        for split, count, lo, hi in (("train", train_per_class, 0, cut),
                                     ("val", val_per_class, cut, w)):
            folder = out / split / path.stem
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                crop = _crop(image, rng, lo, hi)
                Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"{i:03d}.jpg",
                                                                 quality=92)
    return out


def main(argv=None) -> None:
    parser = arguments.Parser(prog="python -m calibration.regions", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where train/ and val/ are written")
    parser.add_argument("--train_per_class", type=arguments.whole_number(1), default=60,
                        help="training crops per photograph (default: 60)")
    parser.add_argument("--val_per_class", type=arguments.whole_number(1), default=20,
                        help="validation crops per photograph (default: 20)")
    parser.add_argument("--seed", type=arguments.whole_number(0), default=0,
                        help="random crop seed (default: 0)")
    args = parser.parse_args(argv)
    try:
        print(build(args.out_dir, args.train_per_class, args.val_per_class, args.seed))
    except OSError as err:
        parser.cannot_write(err, args.out_dir)


if __name__ == "__main__":
    main()

"""The ImageNet-1k (ILSVRC2012) class order every published classifier uses.

`imagenet_synsets.txt` lists the 1000 WordNet IDs sorted, which is the standard order: output
i of a 1000-class model is SYNSETS[i]. TF-slim checkpoints (and the .tflite files made from
them) have 1001 outputs: index 0 is a "background" class, and output i + 1 is SYNSETS[i].
The list is timm's `timm/data/_info/imagenet_synsets.txt` (Apache-2.0).
"""

from __future__ import annotations

import functools
import pathlib

BACKGROUND = "background"  # class 0 of the 1001-class TF-slim checkpoints


@functools.cache
def synsets() -> tuple[str, ...]:
    """The 1000 ImageNet WordNet IDs (n01440764, ...) in the standard class order."""
    text = pathlib.Path(__file__).with_name("imagenet_synsets.txt").read_text(encoding="ascii")
    return tuple(text.split())


def class_names(outputs: int) -> list[str] | None:
    """The class order of an ImageNet classifier with `outputs` outputs: the synsets, with
    the background class first for 1001; None for any other width."""
    if outputs == 1000:
        return list(synsets())
    if outputs == 1001:
        return [BACKGROUND, *synsets()]
    return None

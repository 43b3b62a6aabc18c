"""The detectors' names: every zoo network as the backbone of each detector family.

`ssdlite_mobilenet_v3_small` is SSDLite on MobileNet V3 Small; `yolo_shufflenet_v2` a
YOLOv5-style head on ShuffleNet V2, as YOLOv5-Lite swaps it in. A detector takes its backbone's
widths and variants. The heads themselves are in tfmobile.detection (Keras is imported when one
is built, not here).
"""

from tfmobile.models.registry import available, register_detector

FAMILIES = {
    "ssdlite": ("SSDLite: MobileNetV2 (arXiv 1801.04381) §6.2 and MobileNetV3 "
                "(arXiv 1905.02244) §6.3", 320),
    "yolo": ("YOLOv5-style head (ultralytics/yolov5; no paper) with a swapped backbone, as "
             "YOLOv5-Lite", 320),
}

for _family, (_paper, _size) in FAMILIES.items():
    for _backbone in available("classification"):
        register_detector(f"{_family}_{_backbone}", family=_family, backbone=_backbone,
                          paper=_paper, input_size=_size)

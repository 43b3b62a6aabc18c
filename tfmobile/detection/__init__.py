"""Object detection on the zoo's backbones: SSDLite (MobileNet V2/V3 papers) and a YOLOv5-style
head, trained, converted with TFLite_Detection_PostProcess and evaluated with pycocotools.

Conventions every module here shares (those of the TF Object Detection API and of the
TFLite_Detection_PostProcess op, so artifacts read the way ML Kit, the Task Library and Coral's
examples expect):
- Boxes are float32 [ymin, xmin, ymax, xmax], normalized to [0, 1] by the image's height and
  width. Pixel [x, y, w, h] exists only at the COCO boundary (reading COCO JSON, pycocotools).
- Anchors are float32 [N, 4] as [yc, xc, h, w], normalized.
- Box encodings are [ty, tx, th, tw] against an anchor with scales (y, x, h, w) = (10, 10, 5, 5):
  ty = (yc - ya) / ha * 10, th = log(h / ha) * 5.
- Class ids are 0-based indices into the dataset's class names; there is no background id.
  Score tensors carry C + 1 columns with background in column 0 (the op skips it), so a
  detected class c is column c + 1.
- Images reach a network resized (stretched) to input_size x input_size, RGB, scaled to
  [-1, 1] (x / 127.5 - 1), as the zoo's classifiers take them. Stretching keeps normalized
  boxes unchanged.
"""

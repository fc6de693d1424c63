"""MLPerf's accuracy metrics beyond top-1; where an interval applies, its coverage a test checks by simulation.

They live in the agent, not the controller, because they are scored on the device like top-1
(``agent.accuracy``): the agent has numpy but no scipy or scikit-learn, so each module computes its
metric the way MLCommons' reference script does with plain Python and numpy.

- ``agent.metrics.squad``: SQuAD v1.1 F1 and exact match (MobileBERT/BERT, MLPerf Inference
  ``language/bert``), Wilson interval for exact match, Student's t interval for mean F1.
- ``agent.metrics.auc``: ROC AUC as scikit-learn's ``roc_auc_score`` (MLPerf Tiny's ToyADMOS
  anomaly-detection autoencoder), DeLong's interval.
- ``agent.metrics.detection``: COCO mAP@[.5:.95] (and mAP@.5, mAP@.75) as MLCommons'
  ``vision/classification_and_detection/tools/accuracy-coco.py`` computes it with pycocotools
  (SSD-MobileNet, SSD-ResNet34, RetinaNet); pycocotools is the ``detection`` extra, imported only
  when a detection job is scored.
- ``agent.metrics.segmentation``: mIoU, per-class IoU and pixel accuracy from a pooled confusion
  matrix, ignored label left out (MLPerf Mobile's DeepLabV3/MOSAIC on ADE20K).

Detection and segmentation give no interval: none applies in closed form (mAP is not a proportion or a mean of
independent values; pixels within an image are correlated), and a bootstrap over images would need its
coverage checked by simulation, which is left out.
"""

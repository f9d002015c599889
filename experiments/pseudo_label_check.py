"""How good are adapt's pseudo labels? Scores the recalibrated student, the recalibrated
teacher_camvid, their average (MGD's targets) and the kept (confidence >= 0.7) pixels on
26 training-sized crops of shifted val (docs/log/adapt.md).

Usage: python experiments/pseudo_label_check.py
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import torch

from slimseg_ros.data.rosbag import RosbagFrames
from slimseg_ros.data.transforms import TrainTransform
from slimseg_ros.data.unlabeled import open_unlabeled
from slimseg_ros.eval.metrics import ConfusionMatrix
from slimseg_ros.model.checkpoint import load_checkpoint
from slimseg_ros.train.config import MGDConfig
from slimseg_ros.train.mgd import MGD, MeanTeacher
from slimseg_ros.train.recalibrate import recalibrate_model
from slimseg_ros.train.teacher import Teacher, load_teacher


def main() -> None:
    torch.set_num_threads(1)
    scored = RosbagFrames("runs/shift/shifted_val", "all")
    frames = open_unlabeled("runs/shift/shifted_train")
    model, meta = load_checkpoint("models/slimseg_camvid.safetensors")
    recalibrate_model(model, meta, frames, frames=200)
    teacher = load_teacher("models/teacher_camvid.safetensors", num_classes=11, mean=meta.mean,
                           std=meta.std)
    recalibrate_model(teacher.model, teacher.meta, frames, frames=200)
    mgd = MGD(replace(MGDConfig(), confidence=0.7), teacher,
              MeanTeacher(model, 0.99, ramp=False))
    student = Teacher(copy.deepcopy(model))
    crops = TrainTransform((256, 320), (0.75, 1.25), meta.mean, meta.std, seed=0)
    counts = {k: ConfusionMatrix(11) for k in ("student", "teacher", "ensemble", "kept")}
    for i in range(0, 101, 4):
        image, labels = scored.load(i)
        x, y = crops(image, labels)
        x = x[None]
        probs = mgd._probs(x)
        pseudo = mgd._pseudo(probs.clone())[0][0]
        predicted = {"student": student(x).logits_at(y.shape).argmax(1)[0],
                     "teacher": teacher(x).logits_at(y.shape).argmax(1)[0],
                     "ensemble": probs.argmax(1)[0], "kept": pseudo}
        for name, pred in predicted.items():
            # kept: scored only where a pseudo label was kept
            truth = torch.where(pseudo != 255, y, 255) if name == "kept" else y
            counts[name].update(pred.numpy(), truth.numpy())
    for name, c in counts.items():
        iou = np.nan_to_num(c.per_class_iou())  # a class absent from both counts as 0
        print(name, "mIoU", round(float(iou.mean()), 4), "acc", round(c.pixel_accuracy(), 4),
              "pixels", c.total, np.round(iou, 2).tolist())


if __name__ == "__main__":
    main()

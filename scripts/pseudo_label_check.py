"""How good are adapt's pseudo labels? Scores the recalibrated student, the recalibrated
teacher_camvid, their average (MGD's targets) and the kept (confidence >= 0.7) pixels on
26 training-sized crops of shifted val (docs/data.md). Usage: python scripts/pseudo_label_check.py"""
import copy, torch, numpy as np
torch.set_num_threads(1)
from dataclasses import replace
from slimseg_ros.data.rosbag import RosbagFrames
from slimseg_ros.data.unlabeled import open_unlabeled
from slimseg_ros.data.transforms import TrainTransform
from slimseg_ros.model.checkpoint import load_checkpoint
from slimseg_ros.train.recalibrate import recalibrate_model
from slimseg_ros.train.teacher import Teacher, load_teacher
from slimseg_ros.train.mgd import MGD, MeanTeacher
from slimseg_ros.train.config import MGDConfig

ev = RosbagFrames("runs/shift/shifted_val", "all")
tr = open_unlabeled("runs/shift/shifted_train")
m, meta = load_checkpoint("models/slimseg_camvid.safetensors")
recalibrate_model(m, meta, tr, frames=200)
t = load_teacher("models/teacher_camvid.safetensors", num_classes=11, mean=meta.mean, std=meta.std)
recalibrate_model(t.model, t.meta, tr, frames=200)
mgd = MGD(replace(MGDConfig(), confidence=0.7), t, MeanTeacher(m, 0.99, ramp=False))
student = Teacher(copy.deepcopy(m))
tt = TrainTransform((256, 320), (0.75, 1.25), meta.mean, meta.std, seed=0)
K = 11
conf = {k: np.zeros((K, K), np.int64) for k in ("student", "teacher", "ensemble", "kept")}
def add(name, pred, y, keep=None):
    v = (y != 255) if keep is None else (y != 255) & keep
    idx = y[v] * K + pred[v]
    conf[name] += np.bincount(idx.numpy(), minlength=K * K).reshape(K, K)
for i in range(0, 101, 4):
    img, lab = ev.load(i)
    x, y = tt(img, lab)
    x = x[None]
    ps = student(x).logits_at(y.shape).softmax(1)
    pt = t(x).logits_at(y.shape).softmax(1)
    pe = mgd._probs(x)
    labels, _ = mgd._pseudo(pe.clone())
    add("student", ps.argmax(1)[0], y); add("teacher", pt.argmax(1)[0], y)
    add("ensemble", pe.argmax(1)[0], y); add("kept", labels[0], y, labels[0] != 255)
for k, c in conf.items():
    iou = np.diag(c) / np.maximum(1, c.sum(0) + c.sum(1) - np.diag(c))
    print(k, "mIoU", round(float(iou.mean()), 4), "acc", round(float(np.diag(c).sum() / c.sum()), 4), "pixels", int(c.sum()), np.round(iou, 2).tolist())

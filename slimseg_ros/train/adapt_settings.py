"""What ``slimseg adapt`` does by default: the recipe measured in docs/log/adapt.md.

A module of its own without torch, so the command line takes its flags' defaults from here
(building ``--help`` must not import torch) and the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AdaptSettings"]


@dataclass(frozen=True)
class AdaptSettings:
    """How long and how hard to adapt (the defaults: the recipe measured in docs/log/adapt.md)."""

    # A budget in steps, not minutes, so a GPU does the same adaptation as a CPU: self-training
    # drifts the longer it runs (docs/log/adapt.md, "SGD for 33 steps").
    steps: int = 33  # 0 = as many as ``minutes`` allow
    minutes: float = 0.0  # also stop after this much wall clock, all runs (0 = no limit)
    batch_size: int = 4  # pairs of frames per step (CutMix partners)
    lr: float = 1e-3
    confidence: float = 0.7  # pseudo labels below this mean teacher probability are ignored
    # ... except each predicted class's most confident fraction (class-balanced, CBST): the
    # threshold alone labels few pixels of thin classes (signs, poles), which adaptation then
    # trains away. The value is the best of the paired soups in docs/log/adapt.md ("Labels as the
    # yardstick, and class-balanced soups").
    class_fraction: float = 0.8
    # A stronger, structurally different network (the teacher issue's) as MGD's external
    # teacher, its BN statistics recalibrated on the same frames; None = the input model, frozen.
    teacher: str | None = None
    # The widest width also distils the external teacher's soft predictions on every pixel (KD),
    # which keeps the classes a confidence threshold drops (poles, signs) in the targets.
    distill: bool = False
    # Teachers also predict each frame mirrored (MGDConfig.teacher_flip): better pseudo labels
    # for one more teacher forward per frame.
    teacher_flip: bool = False
    recalibrate_frames: int = 200
    seed: int = 0
    threads: int = 0
    # Each run's result: "student" = the adapting weights after the last step; "average" = their
    # moving average, which starts at the recalibrated model and moves a little each step. One
    # run's last weights scatter with the seed and the camera, its average less
    # (docs/log/adapt.md); the soup of ``runs`` below is what tames that scatter.
    keep: str = "student"
    average_decay: float = 0.99
    # True keeps the recalibrated BN statistics while adapting; worse in docs/log/adapt.md:
    # once the convolutions move, the frozen statistics no longer fit their outputs.
    freeze_bn_statistics: bool = False
    # What learns: "all" weights, or "norm" = only the BN scales and shifts (each width owns its
    # BN, so the widths cannot disturb each other, and the shared convolutions stay as trained).
    params: str = "all"
    # "sgd" (momentum 0.9) moves each weight in proportion to its gradient, so weights the frames
    # say little about stay; "adamw" moves every weight by about ``lr`` per step whatever its
    # gradient, so its last weights drifted below recalibration where SGD's did not
    # (docs/log/adapt.md, "SGD for 33 steps").
    optimizer: str = "sgd"
    # Independent runs (seeds seed, seed + 1, ...) from the recalibrated model, their kept
    # weights averaged and BN statistics re-estimated (a model soup). One run's result moves
    # with its seed (the order of frames and crops); the average keeps what the runs agree on
    # (docs/log/adapt.md, "Three runs averaged").
    runs: int = 3
    # The label-free check (train/adapt_check.py): this fraction of the frames, in blocks of
    # consecutive frames, is held back from recalibration and adaptation; each width keeps its
    # adapted weights only where they agree better with the reference there (0 = no check:
    # every width keeps the adapted weights).
    check_fraction: float = 0.2
    # The reference network: None = ``teacher`` when given, else the shipped teacher.
    check_reference: str | None = None
    # The adapted weights must beat the previous ones' agreement by more than this.
    check_margin: float = 0.0
    # When the adapted weights fail the check at some width: how far from the recalibrated
    # weights towards them to try next, in order (each costs a BN re-estimation and a check).
    check_blends: tuple[float, ...] = (1.0, 0.5, 0.25)
    # After the check, make what it chose again from every frame, the held-back ones too (as a
    # model is refitted on all the data after cross-validation): a fifth fewer frames cost the
    # adapted weights up to 0.005 mIoU (docs/log/adapt.md, "Refit"). Twice the runtime when the
    # check keeps adapted weights; False writes exactly what was checked.
    refit: bool = True

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ValueError(f"runs must be at least 1, got {self.runs}")
        if self.steps < 0 or self.minutes < 0 or not (self.steps or self.minutes):
            raise ValueError("give a positive number of steps or minutes (or both)")
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.keep not in ("average", "student"):
            raise ValueError(f"keep must be 'average' or 'student', got {self.keep!r}")
        if self.params not in ("all", "norm"):
            raise ValueError(f"params must be 'all' or 'norm', got {self.params!r}")
        if not self.check_blends or not all(0.0 < t <= 1.0 for t in self.check_blends):
            raise ValueError(f"check_blends must be fractions in (0, 1], got {self.check_blends}")
        if not 0.0 <= self.check_fraction < 1.0 or self.check_margin < 0:
            raise ValueError(f"check_fraction must be in [0, 1) and check_margin >= 0, got "
                             f"{self.check_fraction} and {self.check_margin}")
        if not 0.0 <= self.average_decay < 1.0:
            raise ValueError(f"average_decay must be in [0, 1), got {self.average_decay}")

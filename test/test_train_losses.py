"""SlimSeg losses on hand-made tensors and label maps."""

from __future__ import annotations

import pytest
import torch

from slimseg_ros.train.losses import boundary_guided_loss, boundary_mask, ce_loss, kd_loss

IGNORE = 255  # ignore


def test_kd_is_zero_for_identical_logits_and_positive_otherwise() -> None:
    logits = torch.randn(2, 5, 4, 6)
    assert kd_loss(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(logits, logits + torch.randn_like(logits)).item() > 1e-3


def test_kd_matches_hand_computed_kl_with_temperature_squared() -> None:
    student = torch.tensor([[[[0.0]], [[0.0]]]])  # (1, 2, 1, 1): uniform
    teacher = torch.tensor([[[[2.0]], [[0.0]]]])
    t = 2.0
    p = torch.softmax(teacher[0, :, 0, 0] / t, 0)
    expected = (p * (p.log() - torch.log(torch.tensor([0.5, 0.5])))).sum() * t * t
    assert (kd_loss(student, teacher, temperature=t).item()
            == pytest.approx(expected.item(), rel=1e-5))


def test_kd_does_not_backpropagate_into_the_teacher() -> None:
    student = torch.randn(1, 3, 2, 2, requires_grad=True)
    teacher = torch.randn(1, 3, 2, 2, requires_grad=True)
    kd_loss(student, teacher).backward()
    assert student.grad is not None and teacher.grad is None


def test_boundary_mask_on_a_two_class_map() -> None:
    labels = torch.tensor([[[0, 0, 0, 1, 1, 1]] * 3])
    mask = boundary_mask(labels, kernel_size=3)
    expected = torch.tensor([[[False, False, True, True, False, False]] * 3])
    assert torch.equal(mask, expected)


def test_wider_kernel_marks_a_wider_band() -> None:
    labels = torch.tensor([[[0, 0, 0, 0, 1, 1, 1, 1]]])
    assert boundary_mask(labels, 3).sum() == 2
    assert boundary_mask(labels, 5).sum() == 4


def test_ignore_pixels_make_no_boundary_and_are_never_on_one() -> None:
    labels = torch.tensor([[[0, 0, IGNORE, IGNORE, 0, 0],
                            [0, 0, IGNORE, IGNORE, 0, 0],
                            [0, 0, IGNORE, IGNORE, 2, 2]]])
    mask = boundary_mask(labels, kernel_size=3, ignore_index=IGNORE)
    expected = torch.tensor([[[False, False, False, False, False, False],
                              [False, False, False, False, True, True],
                              [False, False, False, False, True, True]]])
    assert torch.equal(mask, expected)


def test_boundary_kernel_must_be_odd() -> None:
    with pytest.raises(ValueError, match="odd"):
        boundary_mask(torch.zeros(1, 4, 4, dtype=torch.long), kernel_size=4)


def test_ce_ignores_ignore_pixels_and_is_finite_when_all_ignored() -> None:
    logits = torch.zeros(1, 2, 1, 2)
    labels = torch.tensor([[[0, IGNORE]]])
    assert ce_loss(logits, labels).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert ce_loss(logits, torch.full((1, 1, 2), IGNORE)).item() == 0.0


def test_boundary_guided_loss_only_sees_boundary_pixels() -> None:
    labels = torch.tensor([[[0, 0, 1, 1]]])
    mask = torch.tensor([[[False, True, True, False]]])
    good = torch.tensor([[[[5.0, 5.0, -5.0, -5.0]], [[-5.0, -5.0, 5.0, 5.0]]]])
    wrong_off_boundary = good.clone()
    wrong_off_boundary[0, :, 0, 0] = torch.tensor([-5.0, 5.0])  # pixel 0 is off the boundary
    assert boundary_guided_loss(good, labels, mask).item() == pytest.approx(
        boundary_guided_loss(wrong_off_boundary, labels, mask).item())
    wrong_on_boundary = good.clone()
    wrong_on_boundary[0, :, 0, 1] = torch.tensor([-5.0, 5.0])
    assert (boundary_guided_loss(wrong_on_boundary, labels, mask)
            > boundary_guided_loss(good, labels, mask))


def test_image_kd_loss_compares_pooled_logits() -> None:
    from slimseg_ros.train.losses import image_kd_loss

    a = torch.zeros(1, 2, 4, 4)
    b = torch.zeros(1, 2, 4, 4)
    b[:, 0] = 1.0
    assert image_kd_loss(a, a).item() == 0.0
    assert image_kd_loss(a, b).item() == pytest.approx(0.5)


def test_ohem_keeps_only_hard_pixels_but_at_least_min_kept() -> None:
    from slimseg_ros.train.losses import ohem_ce_loss

    # 4 pixels, 2 classes: two confident right (easy), one unsure, one wrong
    logits = torch.tensor([[[[5.0, 5.0, 0.1, -3.0]], [[0.0, 0.0, 0.0, 3.0]]]])  # (1, 2, 1, 4)
    labels = torch.tensor([[[0, 0, 0, 0]]])
    per_pixel = torch.nn.functional.cross_entropy(logits, labels, reduction="none").flatten()
    # p_true < 0.7 only for the last two pixels
    assert ohem_ce_loss(logits, labels, 0.7, 0.1).item() == pytest.approx(
        per_pixel[2:].mean().item(), rel=1e-6)
    # min_kept 0.75 of 4 valid pixels = 3: the three hardest
    assert ohem_ce_loss(logits, labels, 0.7, 0.75).item() == pytest.approx(
        per_pixel.topk(3).values.mean().item(), rel=1e-6)
    # ignore pixels never count, and an all-ignore batch gives 0, not NaN
    assert ohem_ce_loss(logits, torch.full_like(labels, IGNORE), 0.7, 0.1).item() == 0.0


def test_adaptation_loss_is_zero_for_same_direction_and_positive_otherwise() -> None:
    from slimseg_ros.train.losses import adaptation_loss

    x = torch.randn(2, 8, 3, 4)
    assert adaptation_loss(x, x * 5.0).item() == pytest.approx(0.0, abs=1e-6)  # per-position scale
    assert adaptation_loss(x, torch.randn(2, 8, 3, 4)).item() > 1e-2
    # hand-computed: one position, unit vectors (1, 0) and (0, 1): |1-0| + |0-1| over 2 channels
    s = torch.tensor([[[[1.0]], [[0.0]]]])
    t = torch.tensor([[[[0.0]], [[3.0]]]])
    assert adaptation_loss(s, t).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        adaptation_loss(x, torch.randn(2, 4, 3, 4))


def test_pixel_affinity_is_cosine_between_positions() -> None:
    from slimseg_ros.train.losses import pixel_affinity

    # two positions with orthogonal features, one with a parallel one
    f = torch.tensor([[[[1.0, 0.0, 2.0]], [[0.0, 1.0, 0.0]]]])  # (1, C=2, 1, 3)
    a = pixel_affinity(f)[0]
    assert a.shape == (3, 3)
    expected = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    assert torch.allclose(a, expected, atol=1e-6)


def test_pixel_affinity_loss_compares_structure_across_channel_counts() -> None:
    from slimseg_ros.train.losses import pixel_affinity_loss

    x = torch.randn(2, 16, 5, 6)
    # same spatial structure in another basis and with more channels: zero loss
    rotated = torch.cat([x, torch.zeros(2, 8, 5, 6)], 1)[:, torch.randperm(24)]
    assert pixel_affinity_loss(rotated, x).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(2, 24, 5, 6, requires_grad=True)
    teacher = torch.randn(2, 16, 5, 6, requires_grad=True)
    loss = pixel_affinity_loss(student, teacher)
    assert loss.item() > 1e-3
    loss.backward()
    assert student.grad is not None and teacher.grad is None  # only the student learns
    with pytest.raises(ValueError, match="spatial"):
        pixel_affinity_loss(x, torch.randn(2, 16, 4, 6))

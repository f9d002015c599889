"""BN recalibration really updates the statistics of the chosen widths, and only those."""

from __future__ import annotations

import torch

from slimseg_ros.model import ModelConfig, SlimSegNet
from slimseg_ros.train.bn import recalibrate_bn


def test_recalibration_moves_stats_of_chosen_width_only() -> None:
    torch.manual_seed(0)
    model = SlimSegNet(ModelConfig(num_classes=3, head_channels=16)).eval()
    stem = model.net.stem
    before = [bn.running_mean.clone() for bn in stem.bn]
    shifted = [torch.randn(2, 3, 32, 32) * 0.5 + 4.0 for _ in range(3)]
    used = recalibrate_bn(model, shifted, widths=[0.5])
    assert used == 3
    assert not torch.allclose(stem.bn[1].running_mean, before[1])  # width 0.5 moved
    for i in (0, 2, 3):
        assert torch.equal(stem.bn[i].running_mean, before[i])  # the others did not
    assert not model.training and model.width == 1.0
    # cumulative average of the batch means: the result does not depend on batch order
    again = SlimSegNet(ModelConfig(num_classes=3, head_channels=16)).eval()
    again.load_state_dict({k: v for k, v in model.state_dict().items()})
    recalibrate_bn(again, list(reversed(shifted)), widths=[0.5])
    torch.testing.assert_close(again.net.stem.bn[1].running_mean, stem.bn[1].running_mean)

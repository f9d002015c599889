"""slimseg_ros: slimmable semantic segmentation for ROS 2 robots.

One network, several channel widths (SlimSeg), switched at run time from battery state and
frame-rate feedback. Sub-packages are layered (``test/test_layers.py`` checks it): ``model``
(pure PyTorch), ``train``, ``data``, ``runtime``, ``control`` (pure Python), ``ros`` (the only
rclpy user), ``eval`` and ``cli``.
"""

__version__ = "0.1.0"

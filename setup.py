"""ament_python + pip packaging for slimseg_ros.

Works both with ``colcon build`` in a ROS 2 workspace and with ``pip install [-e] .`` into a venv.
``data_files`` installs the ament index marker, package.xml, launch and config files and the
shipped model under ``<prefix>/share/slimseg_ros``, and a small launcher into
``<prefix>/lib/slimseg_ros`` because ``ros2 run`` and launch_ros look for executables only there
(pip ignores setup.cfg's ``install_scripts``; colcon's own script replaces the launcher).
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "slimseg_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Slimmable semantic segmentation for ROS 2: width switched at run time from "
    "battery state and frame-rate feedback.",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]),
    package_data={PACKAGE: ["py.typed", "data/classes/*.yaml", "assets/**/*"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.xml")),
        ("share/" + PACKAGE + "/config/classes", glob("config/classes/*.yaml")),
        ("share/" + PACKAGE + "/models", glob("models/*.safetensors")),
        ("lib/" + PACKAGE, ["resource/slimseg_node"]),
    ],
    install_requires=["setuptools", "numpy", "safetensors", "pyyaml"],
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "slimseg = slimseg_ros.cli.main:main",
            "slimseg_node = slimseg_ros.ros.node:main",
        ],
    },
)

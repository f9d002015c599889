"""ament_python + pip packaging for slimseg_ros.

Works both with ``colcon build`` in a ROS 2 workspace and with ``pip install [-e] .`` into a venv.
``DATA_FILES`` installs the ament index marker, package.xml, launch and config files and the
shipped model under ``<prefix>/share/slimseg_ros``, and one small launcher per node executable
into ``<prefix>/lib/slimseg_ros`` because ``ros2 run`` and launch_ros look for executables only
there (pip ignores setup.cfg's ``install_scripts``; colcon's own scripts replace the launchers).
``scripts/link_ros_files.py`` links the same files into a venv for an editable install.
"""

from glob import glob

from setuptools import find_namespace_packages, setup

PACKAGE = "slimseg_ros"
EXECUTABLES = ("slimseg_node", "slimseg_lifecycle_node")

DATA_FILES = [
    ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
    ("share/" + PACKAGE, ["package.xml"]),
    ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
    ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.xml")),
    ("share/" + PACKAGE + "/config/classes", glob("config/classes/*.yaml")),
    # the accuracy table of a shipped model sits beside it (<model>.points.json)
    ("share/" + PACKAGE + "/models",
     glob("models/*.safetensors") + glob("models/*.points.json")),
    ("lib/" + PACKAGE, ["resource/" + name for name in EXECUTABLES]),
]

if __name__ == "__main__":
    setup(
        name=PACKAGE,
        version="0.1.0",
        description="Slimmable semantic segmentation for ROS 2: width switched at run time "
        "from battery state and frame-rate feedback.",
        license="Apache-2.0",
        python_requires=">=3.10",
        # Namespace packages too: the data folders (assets/..., data/classes) are packages of
        # package data, which setuptools wants listed.
        packages=find_namespace_packages(include=[PACKAGE, PACKAGE + ".*"]),
        package_data={PACKAGE: ["py.typed", "data/classes/*.yaml", "assets/**/*"]},
        include_package_data=True,
        data_files=DATA_FILES,
        install_requires=["setuptools", "numpy", "safetensors", "pyyaml"],
        zip_safe=False,
        entry_points={
            "console_scripts": [
                "slimseg = slimseg_ros.cli.main:main",
                *(f"{name} = slimseg_ros.ros.entry:{name}" for name in EXECUTABLES),
            ],
        },
    )

# Two commands that work on a fresh machine: `make demo` and `make test`.
# Each creates or updates .venv from the pinned requirements, installs the package, then runs.
# When ../shared/ros2cli/ (next to the repository) holds the ROS 2 command-line wheels, they are
# installed too and the package's ROS files are linked into the venv, so `ros2 launch`,
# `ros2 run`, `ros2 param` and `ros2 lifecycle` run for real in the tests
# (AMENT_PREFIX_PATH=.venv); without that folder those tests skip and say why.

PYTHON ?= python3
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.slimseg-installed
REQS := requirements/base.txt requirements/ros.txt requirements/test.txt
ROS2CLI ?= $(abspath $(ROOT)/../shared/ros2cli)
ROS2CLI_WHEELS := $(wildcard $(ROS2CLI)/*.whl)
CLI_STAMP := $(VENV)/.ros2cli-installed

.PHONY: demo test venv bench clean-venv

venv: $(STAMP) $(if $(ROS2CLI_WHEELS),$(CLI_STAMP))
	$(BIN)/python scripts/link_ros_files.py --prefix $(VENV)

$(STAMP): $(REQS) setup.py setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q $(addprefix -r ,$(REQS))
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The ROS 2 command line (launch, launch_ros, ros2cli and its verbs): wheels built from upstream
# sources, not on PyPI; --no-deps because their dependency names are not PyPI's.
$(CLI_STAMP): $(STAMP) $(ROS2CLI_WHEELS) requirements/ros2cli.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps $(ROS2CLI_WHEELS)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements/ros2cli.txt
	touch $(CLI_STAMP)

demo: venv
	$(BIN)/slimseg demo

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/slimseg bench --input-size 360x480 --json docs/bench.json

clean-venv:
	rm -rf $(VENV)

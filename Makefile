# Two commands that work on a fresh machine: `make demo` and `make test`.
# Each creates or updates .venv from the pinned requirements, installs the package, then runs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.slimseg-installed
REQS := requirements/base.txt requirements/ros.txt requirements/test.txt

.PHONY: demo test venv bench clean-venv

venv: $(STAMP)

$(STAMP): $(REQS) setup.py setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q $(addprefix -r ,$(REQS))
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/slimseg demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/slimseg bench --input-size 360x480 --json docs/bench.json

clean-venv:
	rm -rf $(VENV)

# Two entry points, each installing what it needs first (safe to re-run):
#   make demo   the main job: the paper's experiments end to end on synthetic data (CPU, ~11 min)
#   make test   lint, types and the test suite (what CI runs)
PYTHON ?= python3
PIP := $(PYTHON) -m pip
DEMO := demo

.PHONY: install browser demo test bench

install:
	@# torch first, from the CPU wheel: an unpinned torch would pull a multi-GB CUDA build.
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[train,dev]"

# The report's browser test opens it in headless Chromium (Debian's package; needs root).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: install
	$(PYTHON) examples/demo.py --out $(DEMO)

test: install browser
	ruff check .
	ruff format --check .
	mypy
	$(PYTHON) -m pytest

bench: install
	$(PYTHON) bench/bootstrap.py
	$(PYTHON) bench/sampling.py
	$(PYTHON) bench/report.py
	$(PYTHON) bench/data.py
	$(PYTHON) bench/train.py
	$(PYTHON) bench/pretrain.py

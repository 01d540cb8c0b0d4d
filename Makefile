# Two commands on a fresh machine: `make train` and `make test`. Both create .venv and install.
# PyTorch: on a machine without an NVIDIA GPU we ask for torch==2.13.0, which this project's CI
# machines serve as a CPU wheel from local disk (a plain `pip install torch` would pull a multi-GB
# CUDA build). With nvidia-smi present, PyPI's default CUDA build is taken. Override with e.g.
#   make train TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo "torch>=2.6" || echo "torch==2.13.0")
TASK ?= gym:CartPole-v1
PRESET ?= small
LOGDIR ?= runs/cartpole

.PHONY: setup system system-gl train test clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[all]"
	touch $@

setup: $(VENV)/.installed

# Debian packages, installed where this user can use apt-get (else a note, and what needs them
# skips or falls back): libosmesa6 is MuJoCo's software renderer for machines without EGL
# (training DMC); chromium renders the report page in a test.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } || \
	    echo "note: could not install $$missing"; \
	  else echo "note: $$missing not installed (needs root and apt-get); see the README"; fi; \
	fi
endef

system-gl:
	$(call apt_install,libosmesa6)

system: system-gl
	$(call apt_install,chromium)

train: setup system-gl
	$(VENV)/bin/dreamer2 train --preset $(PRESET) --task $(TASK) --logdir $(LOGDIR)

test: setup system
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info

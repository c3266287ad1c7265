# The two commands of the README: `make demo` (the main job) and `make test`. Each sets itself up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# offline data beside the checkout (as on the project's machines and CI); elsewhere ~/.cache/l2t, downloaded
SHARED_DATA := $(abspath ../shared/data)
export L2T_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),$(HOME)/.cache/l2t)

.PHONY: setup test demo bench clean
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

test: setup
	$(BIN)/python -m pytest

# a short real run: the paper's ResNet32-TinyImageNet source -> VGG9 on CIFAR-10, 10 images per class,
# L2T-ww against scratch (CPU-scale, not the paper's setting; a few minutes on 2 cores)
demo: setup
	$(BIN)/l2t train --method scratch --samples-per-class 10 --epochs 20 --eval-every 5 --out runs/demo/scratch
	$(BIN)/l2t train --method l2t-ww --samples-per-class 10 --epochs 20 --eval-every 5 --out runs/demo/l2t-ww
	$(BIN)/l2t inspect runs/demo/l2t-ww --plot runs/demo/lambda.png

bench: setup
	$(BIN)/python benchmarks/step_time.py

clean:
	rm -rf runs _build

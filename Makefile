# The two commands of the README: `make book` (the main job: the rendered book) and `make test`
# (unit tests, every notebook re-executed against its stored outputs, the book build, the browser check).
# Each sets itself up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# offline data beside the checkout (as on the project's machines and CI); elsewhere ~/.cache/l2t, downloaded
SHARED_DATA := $(abspath ../shared/data)
export L2T_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),$(HOME)/.cache/l2t)
# the book and its check never need the network; keep the notebooks' BLAS deterministic and small
export OMP_NUM_THREADS ?= 2
# (the student notebooks are not run end to end: their exercises are blank; tests/test_student_notebooks.py
# runs their graders with the solutions put back and on the blanks)
NBVAL := --nbval --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider --ignore=notebooks/student
# nbval stops each kernel with a kill, so a notebook's temporary run folders (checkpoints, ~100 MB each) would
# outlive it in /tmp: every nbval step runs with a TMPDIR of its own, emptied before and removed once it passes
NBVAL_TMP := $(abspath build/nbval-tmp)
in_fresh_tmp = rm -rf $(NBVAL_TMP) && mkdir -p $(NBVAL_TMP) && TMPDIR=$(NBVAL_TMP) $(1) && rm -rf $(NBVAL_TMP)

.PHONY: setup setup-book lab students test unit-test nbval nbval-older-isa nbval-torchvision-copy book check-book chromium mathjax demo bench clean
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

setup-book: $(VENV)/.installed-book
$(VENV)/.installed-book: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -e '.[dev,book]'
	touch $@

# the notebooks in JupyterLab, with the project's environment as the kernel
lab: setup
	$(BIN)/pip install -e '.[dev,lab]'
	$(BIN)/jupyter lab notebooks/

# the student notebooks (notebooks/student/, exercises blanked) and every notebook's Colab link, regenerated
students: setup-book
	$(BIN)/python book/student_notebooks.py

# everything CI proves: unit tests, the notebooks reproduce their stored outputs, the book builds with
# warnings as errors, and the rendered pages pass the headless-browser check
test: unit-test nbval nbval-older-isa nbval-torchvision-copy check-book

unit-test: setup-book
	$(BIN)/ruff check l2t tests book benchmarks
	$(BIN)/ruff format --check l2t tests book benchmarks
	$(BIN)/python -m pytest tests

# (matplotlib's one-off font-cache message would otherwise land in the first notebook's outputs)
nbval: setup-book
	$(BIN)/python -c "import matplotlib.pyplot"
	$(call in_fresh_tmp,$(BIN)/python -m pytest $(NBVAL) notebooks/)

# the same notebooks with PyTorch's CPU kernels forced from AVX-512 down to AVX2, so that a stored output which
# only held on the CPU it was made on fails here, not on a reader's. AVX2 is the floor a reader's machine has
# (Colab, any x86 laptop since about 2013): on an AVX2 machine `make nbval` already checks there, and forcing
# the scalar kernels below it would add some 23 minutes for machines no reader uses, so the step says so and stops
CPU_ISA = $(BIN)/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())"
nbval-older-isa: setup-book
	@isa=$$($(CPU_ISA)); if [ "$$isa" != AVX512 ]; then \
	  echo "nbval-older-isa: this CPU runs $$isa kernels, the floor; make nbval checked the notebooks there"; \
	else echo "nbval with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2"; \
	  $(call in_fresh_tmp,ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/python -m pytest $(NBVAL) notebooks/); fi

# the chapters that read CIFAR-10, on a second faithful copy of it in torchvision's own format (what a reader
# without ../shared downloads), made here from the data root: every pixel +-1 and the images in another order
# (tests/torchvision_copy.py), so that a stored output which only held on the book's JPEG copy fails here
TV_COPY := build/cifar10-torchvision
CIFAR_CHAPTERS := $(filter-out %05_meta_gradient.ipynb %11_imagenet_scale.ipynb,$(wildcard notebooks/*.ipynb))
nbval-torchvision-copy: setup-book $(TV_COPY)/torchvision-md5.json
	$(call in_fresh_tmp,L2T_DATA=$(abspath $(TV_COPY)) L2T_TORCHVISION_MD5=$(abspath $(TV_COPY))/torchvision-md5.json \
	  PYTHONPATH=$(abspath tests/torchvision_site) $(BIN)/python -m pytest $(NBVAL) $(CIFAR_CHAPTERS))
$(TV_COPY)/torchvision-md5.json: tests/torchvision_copy.py
	$(BIN)/python tests/torchvision_copy.py $(L2T_DATA) $(TV_COPY)

# the rendered book (stored notebook outputs, nothing executed), MathJax served locally: _build/html
book: setup-book mathjax
	$(BIN)/python book/prepare.py
	$(BIN)/jupyter-book build . --warningiserror --keep-going --builder html

# open every chapter in headless Chromium: math typeset, figures decoded, Colab buttons, internal links;
# screenshots in ci-artifacts/screenshots/
check-book: book chromium
	$(BIN)/python book/check_html.py _build/html --screenshots ci-artifacts/screenshots

# MathJax 3 for offline math, from npm (npm itself from apt when missing)
MATHJAX := build/mathjax/node_modules/mathjax/es5/tex-chtml.js
mathjax: $(MATHJAX)
$(MATHJAX):
	@command -v npm >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y npm; }
	npm install --no-audit --no-fund --prefix build/mathjax mathjax@3.2.2

# Debian's chromium and its WebDriver, installed when missing (needs root or sudo)
chromium:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium chromium-driver; fi

# a real run, small enough for a laptop: the CPU-scale Figure 5 protocol (configs/figure5-quick.yaml) at 10 images
# per class, seed 0 - the paper's ResNet32-TinyImageNet source -> VGG9 on CIFAR-10, scratch then L2T-ww, 200 epochs
# at lr 0.01 (CPU-scale, not the paper's setting). --resume: an interrupted demo continues where it stopped.
demo: setup
	$(BIN)/l2t train --config figure5-quick --seed 0 --method scratch --resume --out runs/demo/scratch
	$(BIN)/l2t train --config figure5-quick --seed 0 --method l2t-ww --resume --out runs/demo/l2t-ww
	$(BIN)/l2t inspect runs/demo/l2t-ww --plot runs/demo/lambda.png

bench: setup
	$(BIN)/python benchmarks/step_time.py

clean:
	rm -rf _build build/book-static build/nbval-tmp book/_generated ci-artifacts   # never runs/: live trainings keep checkpoints there

# banet: `make test` and `make demo` each set up what they need (venv + install) themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-all fmnist demo demo-detect clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev,export,detection,data]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

# Fashion-MNIST demo: BAv2 ResNet-20 on the CPU (docs/training.md has the recipe and the measured result).
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist
DEMO_RUN ?= runs/demo-ba_resnet20_cifar
FMNIST_HELP = Fashion-MNIST is missing from $(FMNIST_DIR). Get it one of three ways: \
	(1) sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu); \
	(2) make demo FMNIST_DIR=DIR with DIR holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
	t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; \
	(3) $(VENV)/bin/banet train -c configs/fashion_mnist/ba_resnet20_cifar.yaml --download --data-dir DIR

fmnist:
	@if [ ! -f $(FMNIST_DIR)/t10k-labels-idx1-ubyte.gz ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; \
		else echo "$(FMNIST_HELP)"; exit 1; fi; \
		echo "installing the Debian package dataset-fashion-mnist"; \
		$$SUDO apt-get install -y dataset-fashion-mnist || { $$SUDO apt-get update && \
			$$SUDO apt-get install -y dataset-fashion-mnist; } || { echo "$(FMNIST_HELP)"; exit 1; }; \
	fi

demo: $(STAMP) fmnist
	$(VENV)/bin/banet train -c configs/fashion_mnist/ba_resnet20_cifar.yaml --data-dir $(FMNIST_DIR) \
		--output $(dir $(DEMO_RUN)) --experiment $(notdir $(DEMO_RUN)) --log-interval 50 --profile-data
	$(VENV)/bin/banet validate --checkpoint $(DEMO_RUN) --dataset fashion_mnist --data-dir $(FMNIST_DIR) \
		--threads 2 --device cpu --results-file $(DEMO_RUN)/validate-fashion_mnist.json --no-progress
	@echo "checkpoint: $(DEMO_RUN)/best/ (model.safetensors + config.json; training state in $(DEMO_RUN)/last/)"
	@echo "metrics:    $(DEMO_RUN)/metrics.csv, test result $(DEMO_RUN)/validate-fashion_mnist.json"
	@echo "plot:       $(DEMO_RUN)/summary.png"

# Detection demo: the papers' flow on the CPU: a BAv2 ResNet-18 pretrained as a Fashion-MNIST classifier, then FCOS
# fine-tuned from it on the Fashion-MNIST scenes (docs/detection.md has both recipes and the measured time and AP).
SCENES_DIR ?= data/fmnist-scenes
DETECT_RUN ?= runs/demo-detect
PRETRAIN_RUN ?= runs/demo-detect-pretrain
SCENES ?= --train 2000 --val 500

demo-detect: $(STAMP) fmnist
	$(VENV)/bin/banet detect scenes --fmnist-dir $(FMNIST_DIR) --output $(SCENES_DIR) $(SCENES)
	$(VENV)/bin/banet train -c configs/fashion_mnist/scenes_pretrain_ba_resnet18.yaml --data-dir $(FMNIST_DIR) \
		--output $(dir $(PRETRAIN_RUN)) --experiment $(notdir $(PRETRAIN_RUN)) --no-progress
	$(VENV)/bin/banet detect train -c configs/detection/scenes_fcos_ba_resnet18.yaml --data-dir $(SCENES_DIR) \
		--backbone-checkpoint $(PRETRAIN_RUN)/last --output $(dir $(DETECT_RUN)) --experiment $(notdir $(DETECT_RUN))
	$(VENV)/bin/banet detect validate --checkpoint $(DETECT_RUN) --data-dir $(SCENES_DIR) --device cpu \
		--results-file $(DETECT_RUN)/validate-val.json --no-progress
	@echo "backbone:   $(PRETRAIN_RUN)/last/ (pretrained; its test top-1 in $(PRETRAIN_RUN)/metrics.csv)"
	@echo "checkpoint: $(DETECT_RUN)/best/ ; metrics: $(DETECT_RUN)/metrics.csv ; box AP: $(DETECT_RUN)/validate-val.json"
	@echo "plot:       $(DETECT_RUN)/summary.png"

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

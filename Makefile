# Two commands do all the set-up: `make test` and `make demo`.
# Each creates (or reuses) .venv, installs the CPU wheel of torch 2.13.0 first (so that
# nothing pulls a multi-GB CUDA build), then this package with its extras (hf: transformers,
# which does not depend on torch; export: onnx, onnxscript, onnxruntime;
# peers: fla-core, whose long_conv file the side-by-side benchmarks load).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.specmix-installed

.PHONY: test demo clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,plot,io,hf,export,peers]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m specmix demo

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis

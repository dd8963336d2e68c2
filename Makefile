# Two entry points: `make demo` and `make test`. Both create .venv when it is missing.
# torch is installed first and pinned: an unsatisfied torch requirement would otherwise pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= all
PYTEST_ARGS ?=
BIN := $(VENV)/bin

.PHONY: venv demo test bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	touch $@

demo: venv
	$(BIN)/python examples/demo.py

# The linter first (pyproject.toml [tool.ruff]), then the tests.
# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: venv
	$(BIN)/ruff check src tests examples benchmarks research scripts
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; failing" >&2; exit 1; fi; exit $$rc

bench: venv
	$(BIN)/python benchmarks/bench_point_ops.py
	$(BIN)/python benchmarks/bench_inference.py --presets tiny small --dtypes float32

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache

# pcforge developer entry points. `make run` and `make test` are the README's quick start.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)            ## the main job on the built-in digits default (replaces runs/digits)
	$(BIN)/pcforge run --out runs/digits --force

test: $(STAMP)           ## the whole test suite
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

bench: $(STAMP)          ## benchmarks: tables on stdout, JSON in benchmarks/results/
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/pc_vs_backprop.py
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/schedules.py
	$(BIN)/python benchmarks/learning_remedy.py
	$(BIN)/python benchmarks/bench_sim.py
	$(BIN)/python benchmarks/bench_boards.py
	$(BIN)/python benchmarks/bench_workloads.py
	$(BIN)/python benchmarks/bench_explore.py
	$(BIN)/pcforge analog sweep --out benchmarks/results/analog

clean:
	rm -rf runs build benchmarks/results .pytest_cache .hypothesis

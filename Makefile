# Each target bootstraps .venv on first use: a fresh machine needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test test-all bench lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)  ## the quick start: PConv correcting a biharmonic fill, on the built-in sample photos (CPU, ~1 min)
	$(BIN)/python train.py experiment=quickstart $(ARGS)

test: $(STAMP)  ## the default suite; slow tests excluded
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

bench: $(STAMP)  ## the CPU-sized benchmarks; see BENCHMARKS.md for the larger ones
	$(BIN)/python benchmarks/bench_masks.py
	$(BIN)/python benchmarks/bench_partial_conv.py
	$(BIN)/python benchmarks/bench_train.py --model context_encoder
	$(BIN)/python benchmarks/bench_switches.py --model context_encoder
	$(BIN)/python benchmarks/bench_inference.py --model context_encoder --size 128 mask=center

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks train.py eval.py
	$(BIN)/ruff format --check src tests benchmarks train.py eval.py

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks train.py eval.py
	$(BIN)/ruff format src tests benchmarks train.py eval.py

clean:
	rm -rf outputs multirun .pytest_cache

# Every target works on a fresh clone: `.venv` is created and filled on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test test-all lint ui bench study clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## The main job: train a conditional GAN on the bundled digits (no network), then write a small
## labeled dataset with its card from that run (a new folder named after the run: nothing is replaced).
run: setup
	$(PY) train.py experiment=quickstart
	$(PY) generate.py run_id=latest num_samples=1000 format=imagefolder card.eval_samples=1000 card.fid_samples=200

## One single-threaded pytest worker per core (pytest-xdist): multi-threaded processes side by side would
## spin-wait on each other's OpenMP pools. TEST_WORKERS=0 runs the suite in one process.
## A crashed worker is not replaced: with --dist loadgroup, xdist 3.8 then hangs or stops with an
## INTERNALERROR (pytest-xdist#1189, #1323) instead of naming the test that crashed it.
TEST_WORKERS ?= auto
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup --max-worker-restart=0

test: setup
	$(PYTEST) -m "not slow" -q --durations=15

test-all: setup
	$(PYTEST) -q

lint: setup
	$(VENV)/bin/ruff check .

## MLflow UI over the default store on http://127.0.0.1:5000
ui: setup
	mkdir -p outputs
	$(VENV)/bin/mlflow server --backend-store-uri sqlite:///$(CURDIR)/outputs/mlflow.db \
		--default-artifact-root $(CURDIR)/outputs/mlartifacts --host 127.0.0.1 --port 5000

## Full benchmark run (writes docs/benchmarks.md); `--quick` is what CI exercises.
bench: setup
	$(PY) scripts/benchmark.py --json

## The Fashion-MNIST study behind README's results table (hours on 2 cores; resumable, run it again to go on).
study: setup
	$(PY) scripts/fashion_mnist_study.py

clean:
	rm -rf outputs multirun

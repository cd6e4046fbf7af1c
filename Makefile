# face3d — `make run` (embedded default: API + worker, no external services) and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DATA   ?= ./data

.PHONY: install run test test-fast bench bench-engine bench-api bench-queue bench-batch bench-gpu bench-accuracy bench-textures clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or: make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/face3d serve --host $(HOST) --port $(PORT) --data-dir $(DATA)

test: install
	$(BIN)/python -m pytest -ra -q

test-fast: install
	$(BIN)/python -m pytest -ra -q -m "not e2e and not slow"

COUNT  ?= 200

bench: bench-engine bench-api bench-queue bench-batch

bench-engine: install
	$(BIN)/python bench/bench_engine.py

bench-api: install
	$(BIN)/python bench/bench_api.py

bench-queue: install
	$(BIN)/python bench/bench_queue.py

bench-batch: install   # COUNT=1000 for the full run (about 15 min on 2 cores)
	$(BIN)/python bench/bench_batch.py --count $(COUNT)

bench-gpu: install
	$(BIN)/python bench/bench_gpu.py

AFLW   ?= ../shared/benchmarks/aflw2000-3d-dev
FACES  ?= ../shared/faces

bench-accuracy: install   # AFLW=<folder> for any AFLW2000-3D folder with a ground_truth.jsonl
	$(BIN)/python bench/bench_accuracy.py $(AFLW)

bench-textures: install   # FACES=<folder> for another folder of photos, e.g. $(AFLW) with ARGS=--summary
	$(BIN)/python bench/bench_textures.py $(FACES) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

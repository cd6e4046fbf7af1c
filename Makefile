# face3d — `make run` (embedded default: API + worker, no external services) and `make test`.
# Python 3.11 or 3.12: the first of them that runs (or PYTHON=/path/to/python3.x).
PYTHON ?= $(shell for p in python3.11 python3.12; do $$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
DATA   ?= ./data

.PHONY: install run test test-fast bench bench-engine bench-threads bench-latency bench-api bench-queue bench-batch bench-gpu bench-accuracy bench-textures bench-memory clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { echo "need python3.11 or python3.12 on PATH (or: make PYTHON=/path/to/python3.12)"; exit 1; }
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing face3d and its dependencies into $(VENV) (the first time takes a few minutes) ..."
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: install   # a busy PORT or a DATA folder already served is refused with the fix; logs: $(DATA)/logs/serve.log
	@$(BIN)/face3d serve --host $(HOST) --port $(PORT) --data-dir $(DATA)

test: install
	$(BIN)/python -m pytest -ra -q

test-fast: install
	$(BIN)/python -m pytest -ra -q -m "not e2e and not slow"

COUNT  ?= 200

bench: bench-engine bench-latency bench-api bench-queue bench-batch

bench-engine: install
	$(BIN)/python bench/bench_engine.py

bench-threads: install   # 1 process x N threads vs N processes x 1 thread (and N x N) on the same jobs (JOBS=N)
	$(BIN)/python bench/bench_threads.py --jobs $(or $(JOBS),12)

bench-latency: install   # submit -> mesh ready -> succeeded over 50 jobs through face3d serve (JOBS=N)
	$(BIN)/python bench/bench_latency.py --jobs $(or $(JOBS),50)
	$(BIN)/python bench/bench_latency.py --jobs $(or $(JOBS),50) --prefer-wait

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

bench-memory: install   # worker peak RSS on a photo of MAX_PIXELS (the README's Memory figures)
	$(BIN)/python bench/bench_memory.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

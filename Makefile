# FedMosaic: `make run` sets up and starts the app, `make test` sets up and runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
PORT ?= 8501

.PHONY: setup run dev test test-fast lint format bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the pinned CPU build installs from local files here; elsewhere any torch>=2.3 works
	$(PY) -m pip install -q "$(TORCH_SPEC)" || $(PY) -m pip install -q "torch>=2.3"
	$(PY) -m pip install -q -e ".[test,ray,onnx,flower,mlflow]"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

# For editing the app: reload on save. Polls the files of the imported modules outside .venv (the
# inotify watcher walks the whole folder, .venv included, and kept a core busy: docs/benchmarks.md).
dev: setup
	$(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.fileWatcherType poll --server.folderWatchBlacklist $(VENV) --server.runOnSave true

# Tests run in parallel processes (pytest-xdist), a module per worker so module fixtures run once.
test: setup lint
	$(PY) -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadscope

test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow and not browser"

# The lint rules and the formatting every change keeps (pyproject's [tool.ruff]); `make format` applies them.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	$(PY) -m bench.engine_overhead

clean:
	rm -rf $(VENV) .pytest_cache

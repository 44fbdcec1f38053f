# Two commands on a fresh machine: `make run` (studio on the bundled sample) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# CPU wheel of torch; a bare `torch` would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: install run test bench screenshots dist dist-smoke clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[samples,dev,ray]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/studio gui sample:digits-cnn

test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_inspect.py
	$(BIN)/python benchmarks/bench_compress.py
	$(BIN)/python benchmarks/bench_run.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python benchmarks/bench_gui_run.py
	$(BIN)/python benchmarks/bench_export.py
	$(BIN)/python benchmarks/bench_sensitivity.py

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python docs/make_window_screenshots.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python docs/make_screenshots.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python docs/make_sensitivity_screenshot.py

# Standalone folder app (PyInstaller): dist/compression-studio/compression-studio, then its smoke test.
# build/ is reused; PyInstaller still redoes its analysis (most of the ~35 min) once any source changed.
dist: $(STAMP)
	$(BIN)/python -m pip install --quiet "pyinstaller>=6.10"
	$(BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build packaging/studio.spec
	cp packaging/compression-studio.desktop packaging/install-linux.sh dist/compression-studio/
	cp resources/icons/studio.svg dist/compression-studio/compression-studio.svg
	packaging/smoke.sh dist/compression-studio

dist-smoke:
	packaging/smoke.sh dist/compression-studio

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info

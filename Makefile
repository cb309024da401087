# RoomWarden: the two commands a new user needs are `make demo` and `make test`.
# Every target creates/refreshes the local virtualenv first, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv system-deps demo test test-unit bench lint sample-room clean

venv: $(STAMP)

# Re-install when the packaging changes. System packages (espeak-ng, sox) are only needed to
# re-synthesize the sample room and are installed by `make sample-room` where root allows.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The main job on embedded defaults: local broker, bundled tiny.en, a sample room of three
## speakers over real WebRTC through the WHIP endpoint.
demo: venv
	$(BIN)/roomwarden demo

## The whole test suite (unit + integration against the real broker, model and WebRTC).
# System packages the real-media-server tests need (Janus). Installed where we are root (CI
# is); elsewhere those tests skip and say why.
system-deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  command -v janus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus; }; \
	else echo "make: not root, skipping system packages (Janus tests will skip)"; fi

# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
test: venv system-deps
	$(BIN)/python -m pytest -q -ra; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-unit: venv
	$(BIN)/python -m pytest -q -ra -m "not integration"

bench: venv
	$(BIN)/python -m bench.run --out bench/RESULTS.md

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy ingest asr policy alerts roomwarden

sample-room: venv
	command -v espeak-ng >/dev/null || (apt-get update -qq && apt-get install -y -qq espeak-ng)
	$(BIN)/python -m roomwarden.samples.synthesize

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

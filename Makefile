# RoomWarden: the two commands a new user needs are `make demo` and `make test`.
# Every target creates/refreshes the local virtualenv first, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv system-deps whep-server demo test test-unit bench bench-accuracy lint sample-room clean

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

# System packages the real-media-server tests need: Janus, and for the browser-speaker test
# headless Chromium with Debian's janus.js and adapter.js; Prometheus runs every Grafana dashboard
# query against the real metrics. Installed where we are root (CI is),
# only those missing, after one `apt-get update`; elsewhere those tests skip and say why.
SYSTEM_PKGS := janus chromium libjs-janus-gateway libjs-webrtc-adapter prometheus
system-deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  for p in $(SYSTEM_PKGS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$p"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi; \
	else echo "make: not root, skipping system packages (Janus/browser tests will skip)"; fi

# Meetecho's janus-whep-server (npm), the real WHEP server the WHEP-pull test runs against.
# Kept out of git in .cache/; without npm the test skips and says why.
WHEP_SERVER := .cache/janus-whep-server
whep-server:
	@if command -v npm >/dev/null && [ ! -d $(WHEP_SERVER)/node_modules/janus-whep-server ]; then \
	  npm install --silent --no-audit --no-fund --prefix $(WHEP_SERVER) janus-whep-server@1.1.0; \
	fi

## The whole test suite (unit + integration against the real broker, model, WebRTC, Janus and
## a headless browser).
# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
test: venv system-deps whep-server
	$(BIN)/python -m pytest -q -ra; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-unit: venv
	$(BIN)/python -m pytest -q -ra -m "not integration"

bench: venv
	$(BIN)/python -m bench.run --out bench/RESULTS.md

## WER/CER over ../shared/evaldata (minutes of decoding; rewrites only its RESULTS.md section)
bench-accuracy: venv
	$(BIN)/python -m bench.run --suite accuracy --out bench/RESULTS.md

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy ingest asr policy alerts roomwarden

sample-room: venv
	command -v espeak-ng >/dev/null || (apt-get update -qq && apt-get install -y -qq espeak-ng)
	$(BIN)/python -m roomwarden.samples.synthesize

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Two commands do all the set-up on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian's chromium drives the browser tests (never a downloaded browser); the fonts give
# screenshots Cyrillic glyphs (PDFs use the fonts shipped in site_builder/fonts); pango is
# WeasyPrint's; the slip tests raster a PDF (poppler-utils) and read its QR codes (zbar-tools);
# the PostgreSQL tests start a throwaway server from Debian's binaries (postgresql).
APT_PACKAGES := chromium fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 sqlite3 poppler-utils zbar-tools postgresql

.PHONY: demo test install install-test system-packages lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python system-packages
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@# python-daemon's wheel, once: tests/test_wheel.py installs it beside ours, offline
	ls build/wheels/python_daemon-*.whl >/dev/null 2>&1 || \
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --dest build/wheels python-daemon

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install
	$(BIN)/otmetka demo

test: install-test
	$(BIN)/ruff check daemon site_builder db tests bench
	$(BIN)/ruff format --check daemon site_builder db tests bench
	@mkdir -p build/typecheck/otmetka && for d in daemon db site_builder; do \
		ln -sfn ../../../$$d build/typecheck/otmetka/$$d; done
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) output/p output/index.html var db/*.sqlite3*

# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run demo test check bench browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalled only when pyproject.toml changes, so a second `make test` starts at once.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/leaderleader demo
	$(BIN)/leaderleader serve

demo: install
	$(BIN)/leaderleader demo

# The report's browser test needs a Chromium (or CHROMIUM=/path/to/chrome): on
# Debian/Ubuntu as root it is installed here; elsewhere we stop and say what to install.
browser:
	@if [ -n "$$CHROMIUM" ] || command -v chromium >/dev/null 2>&1 \
	    || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium (Debian package) for the report's browser test"; \
	  apt-get update -qq >/dev/null \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "make test needs Chromium for the report's browser test: install the chromium package (or Google Chrome), or set CHROMIUM=/path/to/chrome" >&2; \
	  exit 1; \
	fi

test: install browser
	$(BIN)/python -m pytest -q

check: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python -m bench

# Two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test wheel

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt setuptools  # the build backend: `make wheel` and the tests build offline
	$(PY) -m pip install -q -c constraints.txt -e '.[convert,openvino,quantize,ethos-u,cluster,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgekit demo -o demo-out

# dist/edgekit_tflite-VERSION-py3-none-any.whl, the file a device installs (`pip install` of it).
wheel: $(STAMP)
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .

# The last tflite-runtime (2.14, NumPy 1.x) in a venv of its own: the device-side tests run the
# runner under it too, to prove the fallback runtime and its known limits are handled.
TFRT := .venv-tflite-runtime
$(TFRT)/.installed:
	-$(PYTHON) -m venv $(TFRT) && $(TFRT)/bin/python -m pip install -q -c constraints-tflite-runtime.txt \
		tflite-runtime numpy pillow && touch $@

# MediaPipe Tasks (what phone apps load bundles with) and tflite-support's metadata reader, in a venv
# of their own; tflite-support's native part needs libusb (best effort: without it that check is skipped).
MP := .venv-mediapipe
$(MP)/.installed:
	-dpkg -s libusb-1.0-0 >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq libusb-1.0-0) >/dev/null 2>&1
	-$(PYTHON) -m venv $(MP) && $(MP)/bin/python -m pip install -q -c constraints-mediapipe.txt \
		mediapipe tflite-support pillow && touch $@

# Debian's Chromium for the browser test of report.html (Playwright drives it; its own browser download is never
# used). Best effort, needs root and apt: without it that test is skipped with the reason.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	-(apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1

# The remote-device tests need an emulated aarch64 board: set up here (best effort, needs root),
# torn down afterwards; without it those tests are skipped with the reason.
test: $(STAMP) $(TFRT)/.installed $(MP)/.installed $(CHROMIUM)
	PYTHON=$(PY) sh tests/board/board.sh up .board; \
	EDGEKIT_BOARD_DIR=$(CURDIR)/.board $(PY) -m pytest -q; status=$$?; \
	sh tests/board/board.sh down .board; exit $$status

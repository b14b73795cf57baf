#!/usr/bin/env bash
# The course's screenshots for the documentation. Runs the course's browser tests with
# RLGRAD_COURSE_SCREENSHOTS pointing here, so each chapter's test saves <slug>.png in this folder
# (the home page as home.png), 1280 px wide and as tall as the page; then shrinks each PNG to a
# 256-colour palette when Pillow is there (text and plots survive it; the files get ~3x smaller).
#
# Needs the test extras and Chromium (apt-get install chromium); a missing browser is an error
# here, not a skip. Usage, from anywhere:
#   docs/figures/course/make_screenshots.sh [pytest paths]    (default: tests/course)
# Environment: PYTHON (python3), e.g. PYTHON=.venv/bin/python.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
PYTHON=${PYTHON:-python3}
cd "$ROOT"
[ $# -gt 0 ] || set -- tests/course

RLGRAD_COURSE_SCREENSHOTS="$HERE" RLGRAD_REQUIRE_BROWSER=1 \
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m pytest -q "$@"

"$PYTHON" - "$HERE" <<'PY'
import pathlib, sys
try:
    from PIL import Image
except ImportError:
    sys.exit(0)
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.png")):
    before = path.stat().st_size
    image = Image.open(path)
    if image.mode != "P":
        image.convert("RGB").quantize(colors=256).save(path, optimize=True)
    print(f"{path.name}: {image.size[0]}x{image.size[1]}, {before // 1024} -> "
          f"{path.stat().st_size // 1024} KiB")
PY

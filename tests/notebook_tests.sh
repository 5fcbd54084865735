#!/usr/bin/env bash
# Executes every notebook in notebooks/ headless on a small synthetic capture and a plan searched
# on it; fails on the first cell that raises. Exits 77 (skipped) when the Python packages of
# requirements.txt are missing. $SPARSEPLAN is the sparseplan binary, $PYTHON the Python (default
# python3).
set -eu
bin=${SPARSEPLAN:?set SPARSEPLAN to the sparseplan binary}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
if ! "$python" -c "import h5py, numpy, matplotlib, nbclient, nbformat, ipykernel" 2>/dev/null; then
  echo "SKIP: notebook tests need the Python packages of requirements.txt (pip install -r requirements.txt)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" synth-capture --out "$tmp/capture.h5" --grid 8x16x16 --tile 2x4x4 --layers 2 --heads 4 \
  --prompts 2 --steps 2 --block-size 32 --quiet >/dev/null
"$bin" search "$tmp/capture.h5" --recall 0.9 --out "$tmp/plan.json" --quiet >/dev/null
export SPARSEPLAN_CAPTURE=$tmp/capture.h5 SPARSEPLAN_PLAN=$tmp/plan.json SPARSEPLAN_HEADLESS=1 MPLBACKEND=Agg
status=0
for nb in "$root"/notebooks/*.ipynb; do
  if "$python" - "$nb" <<'PY'
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3").execute()
PY
  then
    echo "ok: $(basename "$nb")"
  else
    echo "FAIL: $(basename "$nb")"
    status=1
  fi
done
exit $status

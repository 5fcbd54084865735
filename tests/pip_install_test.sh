#!/usr/bin/env bash
# `pip install .` into a fresh virtual environment, then the Python tests on the installed
# package (no build folder, no environment variable). The fresh environment sees the packages of
# the repository's .venv through a .pth file, so torch (4 GB) is not installed a second time;
# sparseplan itself is built and installed into the fresh environment.
# Usage: pip_install_test.sh VENV_PYTHON SPARSEPLAN_BINARY WAN_MINI_DIR
set -euo pipefail
base_python=$1 binary=$2 wan_mini=$3
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 -m venv "$tmp/venv"
base_site=$("$base_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$base_site" > "$site/base_venv.pth"
start=$(date +%s)
# The CUDA kernels compile in the main build (and in a user's `pip install .` where nvcc is
# found); here, on machines without a GPU, they are left out so the test checks the packaging in
# half the build time. PIP_INSTALL_CUDA=1 builds them too.
cuda=OFF
[[ "${PIP_INSTALL_CUDA:-0}" == 1 ]] && cuda=ON
"$tmp/venv/bin/python" -m pip install --quiet --config-settings=cmake.define.SPARSEPLAN_CUDA=$cuda "$root"
echo "pip install . took $(( $(date +%s) - start )) s"
installed=$("$tmp/venv/bin/python" -c 'import sparseplan, os; print(os.path.dirname(sparseplan.__file__))')
echo "installed in $installed"
[[ "$installed" == "$site/sparseplan" ]]
ls "$installed"/_core*.so "$installed"/libsparseplan_ops.so >/dev/null
cd "$tmp"
env -u PYTHONPATH -u SPARSEPLAN_OPS_LIB "$tmp/venv/bin/python" "$root/tests/test_python_api.py"
env -u PYTHONPATH -u SPARSEPLAN_OPS_LIB "$tmp/venv/bin/python" "$root/tests/test_python_ops.py"
env -u PYTHONPATH -u SPARSEPLAN_OPS_LIB "$tmp/venv/bin/python" "$root/tests/test_diffusers_wan.py" \
  "$binary" "$wan_mini"

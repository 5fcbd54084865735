# Sourced by the build scripts: the Python of the virtual environment (.venv, made by
# scripts/install_deps.sh) and the CMake arguments that build against its torch. Torch_DIR is
# that torch's own CMake folder, so a system LibTorch cannot shadow it.
# Environment: VENV (default <repo>/.venv). Sets: python, torch_cmake_args.
python="${VENV:-$root/.venv}/bin/python"
if [ ! -x "$python" ]; then
  echo "$(basename "$0"): $python not found; run scripts/install_deps.sh first" >&2
  exit 1
fi
# torch's CMake configuration (a CUDA build) needs the CUDA toolkit even when the kernels are off.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
torch_cmake_args=(-DTorch_DIR="$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')/Torch"
                  -DPython3_EXECUTABLE="$python")

#!/usr/bin/env bash
# The installed CMake package: installs the build into a temporary prefix, then configures,
# builds and runs tests/cmake_consumer against it (find_package(sparseplan)).
# Usage: cmake_package_test.sh BUILD_DIR TORCH_DIR PLAN
set -euo pipefail
build=$1 torch_dir=$2 plan=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/sparseplan/plan/plan.h"
cmake -S "$here/cmake_consumer" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DTorch_DIR="$torch_dir" >/dev/null
cmake --build "$tmp/build" >/dev/null
out=$("$tmp/build/consumer" "$plan")
echo "$out"
[[ "$out" == "blocks "*" density "* ]]

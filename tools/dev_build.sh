#!/usr/bin/env bash
# Fast edit-build-test loop without pip: builds into build/<name> and lays out an
# importable package at build/<name>/pkg (Python files linked from src/, extension built).
# Usage: tools/dev_build.sh [name]   then   PYTHONPATH=build/<name>/pkg python -m pytest tests
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=${1:-dev}
build="$root/build/$name"
python=${PYTHON:-python3}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPython_EXECUTABLE="$(command -v "$python")" \
    -Dnanobind_DIR="$("$python" -c 'import nanobind; print(nanobind.cmake_dir())')" \
    -DSKBUILD_PROJECT_VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/src/hbm_runtime/_version.py")" >/dev/null
fi
cmake --build "$build"
pkg="$build/pkg/hbm_runtime"
rm -rf "$pkg" && mkdir -p "$pkg"
for f in "$root"/src/hbm_runtime/*; do ln -s "$f" "$pkg/"; done
ln -s "$build"/src/cpp/python/_hbm_ext*.so "$pkg/"
echo "PYTHONPATH=$build/pkg"

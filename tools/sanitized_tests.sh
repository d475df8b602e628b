#!/usr/bin/env bash
# The whole pytest suite against an extension built with AddressSanitizer + UBSan.
#
#   1. configures build/asan (RelWithDebInfo, -fsanitize=address,undefined through
#      CMAKE_*_FLAGS) and lets tools/dev_build.sh build it and lay out build/asan/pkg;
#   2. runs `python -m pytest tests -q -x -p no:cacheprovider --capture=sys` with libasan
#      preloaded (python itself is not instrumented; the ASan runtime must be the first DSO
#      loaded), prints the wall time and every sanitizer report (fails if there is one).
#
# Subprocess tests run as they are (children inherit LD_PRELOAD and the options below).
# Tests that cannot work under ASan are deselected by name, each with its reason, in
# CANNOT_RUN_UNDER_ASAN below (printed at every run).
#
# Usage: tools/sanitized_tests.sh [extra pytest args...]
# Env:   PYTHON       interpreter (default: python3); needs numpy, onnx, onnxruntime,
#                     openvino, nanobind, pytest, cmake, ninja (torch optional)
#        ASAN_BUILD   build directory name under build/ (default: asan)
#        CMAKE_BUILD_PARALLEL_LEVEL   build jobs (default: 2)
#
# The UCP test double (tests/ucp_double) that the .hbm tests build themselves stays
# unsanitized here; it is covered under ASan/UBSan by the engine_check ctest steps of .ci/run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
name=${ASAN_BUILD:-asan}
build="$root/build/$name"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
start=$SECONDS

san="-fsanitize=address,undefined -fno-omit-frame-pointer"
# -fno-sanitize-recover: a UBSan finding aborts at once (UBSAN_OPTIONS halt_on_error=1 does
# the same for recoverable checks; both, so neither setting alone is load-bearing).
cflags="$san -fno-sanitize-recover=undefined -g"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$san" \
    -DCMAKE_SHARED_LINKER_FLAGS="$san" -DCMAKE_MODULE_LINKER_FLAGS="$san" \
    -DPython_EXECUTABLE="$(command -v "$python")" \
    -Dnanobind_DIR="$("$python" -c 'import nanobind; print(nanobind.cmake_dir())')" \
    -DSKBUILD_PROJECT_VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/src/hbm_runtime/_version.py")" >/dev/null
fi
# Runtime environment of every process below (the build's stub generator imports the
# freshly built module too, and pytest's subprocess tests inherit all of it):
#
#   LD_PRELOAD=libasan.so libstdc++.so.6
#       python is not instrumented, so the ASan runtime must be loaded first. libstdc++
#       right after it: python does not link libstdc++, so without it ASan starts before
#       any C++ runtime is loaded, cannot resolve the real __cxa_throw ("failed to intercept
#       '__cxa_throw'"), and the first C++ exception (OpenVINO throws some inside
#       compile_model) dies with CHECK failed: asan_interceptors.cpp "real___cxa_throw != 0".
#       libubsan needs no preload: the extension links it (-fsanitize=undefined).
#   TBB_ENABLE_SANITIZERS=1
#       OpenVINO's oneTBB dlopens libtbbbind with RTLD_DEEPBIND, which ASan refuses
#       ("...RTLD_DEEPBIND flag which is incompatible with sanitizer runtime", the process
#       exits); this documented oneTBB switch makes it load without RTLD_DEEPBIND.
#   ASAN_OPTIONS
#       detect_leaks=0   Python, OpenVINO and torch keep allocations until exit by design.
#       log_path=...     reports go to files (printed below): pytest captures fd 2, and a
#                        report written there vanishes with the aborting process; children
#                        (subprocess tests) log there too. pytest also runs --capture=sys.
#       Not needed, measured with OpenVINO 2026.4 and torch 2.13 CPU: alloc_dealloc_mismatch=0,
#       detect_odr_violation=0 (only our extension is instrumented), intercept_* options.
#   UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1: the first finding aborts. Combined
#       with ASan, UBSan reports go to stderr whatever its log_path says: --capture=sys
#       keeps fd 2 uncaptured so that they are seen.
#   PYTHONMALLOC=malloc
#       Python objects come from ASan's malloc instead of pymalloc arenas, so an overflow
#       from the extension into a Python object (e.g. a bytes or array buffer) is caught.
libasan=$(gcc -print-file-name=libasan.so)
libstdcxx=$(gcc -print-file-name=libstdc++.so.6)  # the runtime the C++ libraries load
for lib in "$libasan" "$libstdcxx"; do
  [ -f "$lib" ] || { echo "sanitized_tests: gcc has no $lib" >&2; exit 1; }
done
logs="$build/sanitizer-logs"
rm -rf "$logs" && mkdir -p "$logs"
export LD_PRELOAD="$libasan $libstdcxx"
export TBB_ENABLE_SANITIZERS=1
export ASAN_OPTIONS="detect_leaks=0:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONMALLOC=malloc

PYTHON="$python" bash tools/dev_build.sh "$name"
echo "build: $((SECONDS - start)) s"
ext=$(ls "$build"/pkg/hbm_runtime/_hbm_ext*.so)
deps=$(ldd "$ext")  # (not `ldd | grep -q`: under pipefail grep's early exit fails the pipe)
[[ $deps == *libasan* ]] || { echo "sanitized_tests: $ext is not linked with libasan" >&2; exit 1; }

# test id|reason
CANNOT_RUN_UNDER_ASAN=(
  "tests/test_hostile_models.py::test_lying_seed_does_not_crash[lie_in_dims_huge]|the model makes\
 OpenVINO's ov::Allocator ask operator new for 12 TiB; normally that throws std::bad_alloc and\
 becomes a load/run error, but ASan's operator new cannot throw: it aborts the process\
 (allocation-size-too-big, or out-of-memory with allocator_may_return_null=1)"
)
deselect=()
for entry in "${CANNOT_RUN_UNDER_ASAN[@]}"; do
  echo "deselected under ASan: ${entry%%|*}: ${entry#*|}"
  deselect+=(--deselect "${entry%%|*}")
done

export PYTHONPATH="$build/pkg${PYTHONPATH:+:$PYTHONPATH}"
for v in LD_PRELOAD TBB_ENABLE_SANITIZERS ASAN_OPTIONS UBSAN_OPTIONS PYTHONMALLOC PYTHONPATH; do
  echo "$v=${!v}"
done
t0=$SECONDS
rc=0
"$python" -m pytest tests -q -x -p no:cacheprovider --capture=sys "${deselect[@]}" "$@" || rc=$?
echo "sanitized pytest: $((SECONDS - t0)) s (exit $rc); with the build: $((SECONDS - start)) s"
shopt -s nullglob
reports=("$logs"/*)
if [ ${#reports[@]} -gt 0 ]; then
  for f in "${reports[@]}"; do
    printf '\n---- sanitizer report %s ----\n' "$f"
    head -c 20000 "$f"
  done
  echo "sanitized_tests: ${#reports[@]} sanitizer report(s) (above; $logs)" >&2
  [ "$rc" -ne 0 ] || rc=1
fi
exit $rc

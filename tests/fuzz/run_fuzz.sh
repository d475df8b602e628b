#!/usr/bin/env bash
# Fuzzes the .onnx load+run path for a bounded time; exits non-zero on any crash or finding.
#   tests/fuzz/run_fuzz.sh --seconds 180 [--seed N] [--jobs N]
# Installs clang + libFuzzer/ASan runtime (Debian) and the Python packages it needs when
# missing, builds the libFuzzer target (build/fuzz-asan) and the extension (build/fuzz-dev),
# both idempotently, then:
#   1. replays tests/fuzz/regressions/ (reproducers of fixed bugs) through the fuzz target;
#   2. libFuzzer on a copy of tests/fuzz/corpus for 2/3 of --seconds (ASan/UBSan);
#   3. tests/fuzz/structural.py for the remaining third.
# Findings land in build/fuzz-findings/.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=180 seed=$(( $(date +%s) % 100000 )) jobs=2
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--seed N] [--jobs N]" >&2; exit 2 ;;
  esac
done
python=${PYTHON:-python3}

# ---- tools ---------------------------------------------------------------------------------
have_libfuzzer() {
  command -v clang++ >/dev/null 2>&1 &&
    printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' |
      clang++ -fsanitize=fuzzer,address,undefined -x c++ - -o /tmp/hbm_fuzz_probe.$$ >/dev/null 2>&1
}
if ! have_libfuzzer; then
  echo "installing clang and its libFuzzer/sanitizer runtime (apt-get)"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # clang-N needs libclang-rt-N-dev (Debian 12+) for libFuzzer and the ASan/UBSan runtimes.
  ver=$(apt-cache depends clang 2>/dev/null | sed -n 's/.*Depends: clang-\([0-9]*\)$/\1/p' | head -n 1)
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    clang ${ver:+libclang-rt-$ver-dev} >/dev/null
  have_libfuzzer || { echo "clang cannot build a libFuzzer target here" >&2; exit 1; }
fi
rm -f /tmp/hbm_fuzz_probe.$$
"$python" -c "import onnx, onnxruntime, openvino, nanobind, numpy" 2>/dev/null ||
  "$python" -m pip install -q onnx onnxruntime "openvino>=2026.4" "nanobind>=3.1" numpy
command -v cmake >/dev/null && command -v ninja >/dev/null || "$python" -m pip install -q cmake ninja
libs=$("$python" -c 'import os, openvino; print(os.path.join(os.path.dirname(openvino.__file__), "libs"))')
export HBM_RUNTIME_OPENVINO_PACKAGE_LIBS="$libs"

# ---- builds (incremental) ------------------------------------------------------------------
fz=build/fuzz-asan
if [ ! -f "$fz/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S tests/fuzz -B "$fz" -G Ninja >/dev/null
fi
cmake --build "$fz" -j "$jobs" --target fuzz_load_run
PYTHON="$python" CMAKE_BUILD_PARALLEL_LEVEL="$jobs" tools/dev_build.sh fuzz-dev >/dev/null

# ---- runs ----------------------------------------------------------------------------------
out=build/fuzz-findings
mkdir -p "$out/libfuzzer"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=8192:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0

if [ -d tests/fuzz/regressions ] && ls tests/fuzz/regressions/*.onnx >/dev/null 2>&1; then
  echo "=== replaying tests/fuzz/regressions ==="
  "$fz/fuzz_load_run" -runs=0 tests/fuzz/regressions/*.onnx 2>&1 | tail -n 3 || status=1
fi

lf_seconds=$(( seconds * 2 / 3 )); [ "$lf_seconds" -ge 1 ] || lf_seconds=1
st_seconds=$(( seconds - lf_seconds )); [ "$st_seconds" -ge 1 ] || st_seconds=1
work=build/fuzz-work/corpus
rm -rf "$work" && mkdir -p "$work" && cp tests/fuzz/corpus/* "$work/"
echo "=== libFuzzer: $lf_seconds s, seed $seed ==="
log=$out/libfuzzer.log
if "$fz/fuzz_load_run" "$work" -seed="$seed" -max_total_time="$lf_seconds" -timeout=60 \
     -rss_limit_mb=8192 -malloc_limit_mb=8192 -max_len=65536 -print_final_stats=1 \
     -artifact_prefix="$out/libfuzzer/" >"$log" 2>&1; then
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log" || true
else
  status=1
  echo "libFuzzer found a crash (log: $log):"
  grep -E '==FINDING==|ERROR: (Address|Leak|Undefined)|runtime error|SUMMARY|Test unit written' "$log" | head -n 20 || true
fi

echo "=== structural fuzzer: $st_seconds s, seed $seed ==="
PYTHONPATH="$root/build/fuzz-dev/pkg" "$python" tests/fuzz/structural.py --seconds "$st_seconds" \
  --seed "$seed" --out "$out/structural" || status=1
exit $status

#!/usr/bin/env bash
# Proves the "one cp310-abi3 wheel for every CPython >= 3.10" promise on this machine:
#   1. builds the wheel once (pip wheel . --no-deps) and checks its tag and contents,
#   2. abi3audit --strict on it,
#   3. for every CPython 3.10-3.13 in pyenv: a fresh virtualenv, THAT wheel file + the test
#      dependencies, and the test suite run from outside the source tree,
#   4. builds an sdist, a wheel from that sdist, and checks that wheel installs and works.
# Prints a table (python -> passed/failed/skipped) and exits non-zero on any failure.
#
# Usage: tools/check_wheels.sh [WORK_DIR]      (default: build/check-wheels)
# Env:   PYTHONS="/path/python3.10 ..."  interpreters to test (default: ~/.pyenv/versions/3.1[0-3].*)
#        PYTHON=python3                  interpreter that builds (default: python3)
#        PIP_CACHE_DIR                   pip's cache, shared by every step (pip's default otherwise)
#        CHECK_WHEELS_SKIP_SDIST=1       skip step 4
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mkdir -p "${1:-$root/build/check-wheels}" && cd "${1:-$root/build/check-wheels}" && pwd)
build_python=${PYTHON:-python3}
arch=$(uname -m)
dist_name=hbm_runtime_universal
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/src/hbm_runtime/_version.py")
# OpenCV: the NV12 conversions and the examples are checked against it, on every Python and
# with numpy 1.x too (pip then picks an OpenCV built for numpy 1.x).
test_deps=(pytest onnx onnxruntime mypy nanobind opencv-python-headless)
start=$SECONDS

step() { printf '\n=== [%4ss] %s ===\n' "$((SECONDS - start))" "$*"; }
fail() { echo "check_wheels: $*" >&2; exit 1; }
pip_q() { "$@" -q --disable-pip-version-check 2>&1 | { grep -v '^WARNING: Location' || true; }; }  # keeps pip's status
[ -n "$version" ] || fail "no __version__ in src/hbm_runtime/_version.py"

# ---- tools -----------------------------------------------------------------------------
step "tools virtualenv ($build_python)"
tools=$work/tools
[ -x "$tools/bin/python" ] || "$build_python" -m venv "$tools"
pip_q "$tools/bin/python" -m pip install --upgrade pip abi3audit build
"$tools/bin/python" -m pip show abi3audit build >/dev/null || fail "could not install abi3audit/build"

# ---- 1. build once -----------------------------------------------------------------------
step "build the wheel (pip wheel . --no-deps)"
rm -rf "$work/dist" && mkdir -p "$work/dist"
# A private build directory: other builds in the tree (pip install ., dev_build.sh) keep theirs.
"$tools/bin/python" -m pip wheel "$root" -w "$work/dist" --no-deps --disable-pip-version-check \
  --config-settings=build-dir="$work/build/{wheel_tag}" >"$work/wheel-build.log" 2>&1 ||
  { tail -n 40 "$work/wheel-build.log"; fail "the wheel build failed (log: $work/wheel-build.log)"; }
shopt -s nullglob
wheels=("$work"/dist/*.whl)
[ ${#wheels[@]} -eq 1 ] || fail "expected one wheel in $work/dist, got: ${wheels[*]:-none}"
wheel=${wheels[0]}
expected="${dist_name}-${version}-cp310-abi3-linux_${arch}.whl"
echo "wheel: $(basename "$wheel")"
[ "$(basename "$wheel")" = "$expected" ] || fail "wheel is $(basename "$wheel"), expected $expected"

"$tools/bin/python" - "$wheel" "$arch" <<'EOF' || fail "wheel contents"
import sys, zipfile
wheel, arch = sys.argv[1], sys.argv[2]
names = zipfile.ZipFile(wheel).namelist()
meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
tags = [l.split(": ", 1)[1] for l in meta.splitlines() if l.startswith("Tag: ")]
assert tags == [f"cp310-abi3-linux_{arch}"], f"WHEEL tags {tags}"
need = ["hbm_runtime/__init__.py", "hbm_runtime/_hbm_ext.abi3.so", "hbm_runtime/_hbm_ext.pyi",
        "hbm_runtime/py.typed", "hbm_runtime/models/demo_classifier.onnx"]
missing = [n for n in need if n not in names]
assert not missing, f"missing from the wheel: {missing}"
stray = [n for n in names if n.endswith((".cpp", ".h", ".txt.in")) or n.startswith(("src/", "tests/"))]
assert not stray, f"sources in the wheel: {stray}"
print(f"WHEEL tag {tags[0]}; {len(names)} files; .so, stub, py.typed, demo model present")
EOF

# ---- 2. abi3audit --------------------------------------------------------------------------
step "abi3audit --strict"
"$tools/bin/abi3audit" --strict --verbose "$wheel" || fail "abi3audit --strict failed"

# ---- 3. the same wheel on every Python -----------------------------------------------------
if [ -n "${PYTHONS:-}" ]; then
  read -r -a pythons <<<"$PYTHONS"
else
  pythons=()
  for minor in 10 11 12 13; do
    for d in "$HOME"/.pyenv/versions/3."$minor".*; do
      if [[ $(basename "$d") =~ ^3\.$minor\.[0-9]+$ ]]; then pythons+=("$d/bin/python3"); fi
    done
  done
fi
[ ${#pythons[@]} -gt 0 ] || fail "no Python 3.10-3.13 found (set PYTHONS)"

scratch=$work/scratch  # the tests run from here: src/ is not on sys.path
mkdir -p "$scratch"
declare -A results
status=0
run_tests() {  # run_tests LABEL VENV_PYTHON : the test suite, counts into results[LABEL]
  local label=$1 py=$2 xml="$work/junit-$1.xml" rc=0
  (cd "$scratch" && "$py" -m pytest "$root/tests" -q -p no:cacheprovider --junitxml="$xml") \
    > "$work/pytest-$label.log" 2>&1 || rc=$?
  tail -n 15 "$work/pytest-$label.log"
  results[$label]=$("$py" - "$xml" "$rc" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    suites = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(f"0 0 0 0 {sys.argv[2]}"); raise SystemExit
suites = [suites] if suites.tag == "testsuite" else list(suites)
total = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(total - failed - skipped, failed, skipped, total, sys.argv[2])
EOF
)
  [ "$rc" -eq 0 ] || status=1
}

for py in "${pythons[@]}"; do
  ver=$("$py" -c 'import sys; print(".".join(map(str, sys.version_info[:3])))')
  # The oldest Python runs with numpy 1.x: the extension reads and makes numpy arrays through
  # numpy's C-API table and must work with both major versions.
  extra=()
  [ "$py" = "${pythons[0]}" ] && extra=("numpy<2")
  step "Python $ver: fresh virtualenv, $(basename "$wheel"), ${extra[*]:-latest numpy}, tests"
  venv=$work/venv-$ver
  rm -rf "$venv"
  "$py" -m venv "$venv"
  pip_q "$venv/bin/python" -m pip install "$wheel" "${test_deps[@]}" "${extra[@]}"
  "$venv/bin/python" -c 'import numpy; print("numpy", numpy.__version__)'
  where=$(cd "$scratch" && "$venv/bin/python" -c 'import hbm_runtime; print(hbm_runtime.__file__)') ||
    fail "Python $ver: cannot import the installed wheel"
  [[ $where == "$venv"/* ]] || fail "Python $ver imported hbm_runtime from $where, not from the wheel"
  run_tests "$ver" "$venv/bin/python"
done

# ---- 4. sdist -> wheel ---------------------------------------------------------------------
if [ "${CHECK_WHEELS_SKIP_SDIST:-0}" != 1 ]; then
  step "sdist, and a wheel built from it"
  rm -rf "$work/sdist" "$work/sdist-wheel" && mkdir -p "$work/sdist" "$work/sdist-wheel"
  "$tools/bin/python" -m build --sdist -o "$work/sdist" "$root" >"$work/sdist.log" 2>&1 ||
    { tail -n 40 "$work/sdist.log"; fail "the sdist build failed"; }
  sdists=("$work"/sdist/*.tar.gz)
  [ ${#sdists[@]} -eq 1 ] || fail "expected one sdist, got: ${sdists[*]:-none}"
  sdist=${sdists[0]}
  echo "sdist: $(basename "$sdist") ($(tar tzf "$sdist" | wc -l) files)"
  if tar tzf "$sdist" | grep -E '/(build|dist|\.github)/|\.so$' ; then fail "build products in the sdist"; fi
  # From the tarball: its own temporary build directory, nothing of the source tree.
  "$tools/bin/python" -m pip wheel "$sdist" -w "$work/sdist-wheel" --no-deps --disable-pip-version-check \
    >"$work/sdist-wheel.log" 2>&1 || { tail -n 40 "$work/sdist-wheel.log"; fail "the wheel build from the sdist failed"; }
  swheels=("$work"/sdist-wheel/*.whl)
  [ ${#swheels[@]} -eq 1 ] || fail "expected one wheel from the sdist"
  [ "$(basename "${swheels[0]}")" = "$expected" ] || fail "sdist wheel is $(basename "${swheels[0]}"), expected $expected"
  "$tools/bin/python" - "$wheel" "${swheels[0]}" <<'EOF' || fail "the wheel from the sdist differs"
import sys, zipfile
a, b = ({n for n in zipfile.ZipFile(w).namelist() if ".dist-info/" not in n} for w in sys.argv[1:])
assert a == b, f"only in the tree's wheel: {sorted(a - b)}; only in the sdist's: {sorted(b - a)}"
print(f"same {len(a)} files as the wheel built from the tree")
EOF
  # Install it with the build interpreter and run the suite once more.
  sver=$("$build_python" -c 'import sys; print(".".join(map(str, sys.version_info[:3])))')
  venv=$work/venv-sdist
  rm -rf "$venv"
  "$build_python" -m venv "$venv"
  pip_q "$venv/bin/python" -m pip install "${swheels[0]}" "${test_deps[@]}"
  (cd "$scratch" && "$venv/bin/python" -m hbm_runtime demo --runs 3) | tail -n 3
  run_tests "sdist-$sver" "$venv/bin/python"
fi

# ---- summary ---------------------------------------------------------------------------------
printf '\n%-14s %7s %7s %8s  %s\n' python passed failed skipped result
for label in $(printf '%s\n' "${!results[@]}" | sort -V); do
  read -r passed failed skipped total rc <<<"${results[$label]}"
  verdict=ok; { [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$total" -eq 0 ]; } && verdict="FAILED (see $work/pytest-$label.log)"
  printf '%-14s %7s %7s %8s  %s\n' "$label" "$passed" "$failed" "$skipped" "$verdict"
done
echo "wheel $(basename "$wheel"), abi3audit --strict clean, $((SECONDS - start)) s"
exit $status

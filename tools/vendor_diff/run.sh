#!/usr/bin/env bash
# The vendor differential: runs the vendor's own hbm_runtime wheel (hbm-runtime 0.1.0.post1,
# cp310, aarch64) and this project's aarch64 wheel with the same probe script against the
# same aarch64 build of the UCP test double (tests/ucp_double), under qemu-user in an arm64
# root, and prints every difference between the two reports that is not listed in
# tools/vendor_diff/intentional.py. Exit status: 0 when only intentional differences remain,
# 1 on any other difference (known ones included, unless HBM_VDIFF_ACCEPT_KNOWN=1), 2 when a
# step fails. docs/vendor_diff.md describes it all.
#
# Usage: tools/vendor_diff/run.sh [--steps LIST] CPYTHON_SRC [VENDOR_WHEEL]
#   CPYTHON_SRC    a CPython 3.10 source tree (a directory holding configure), or a git
#                  directory (bare or not) of one, exported with git archive (blobs missing
#                  from a partial clone are left out)
#   VENDOR_WHEEL   hbm_runtime-0.1.0.post1-cp310-cp310-manylinux_2_34_aarch64.whl (default:
#                  downloaded with pip into the work folder)
#   --steps LIST   comma-separated subset of: tools,root,python,wheels,ours,double,install,
#                  probe,compare (default: all, in that order; each step that is already done
#                  and whose inputs did not change is skipped)
# Env:  HBM_VDIFF_WORK=dir      work folder (default build/vdiff); the arm64 root, the cross-
#                               built CPython, wheels, reports and logs stay there
#       HBM_DEBIAN_SUITE        Debian suite of the arm64 root (default bookworm)
#       HBM_DEBIAN_MIRROR       (default: the first Debian mirror in this machine's apt sources)
#       HBM_CROSS_NO_APT=1      do not run apt-get (tools already installed)
#       HBM_VDIFF_OUR_WHEEL=f   use this aarch64 wheel of ours instead of building one with
#                               tools/cross/build_aarch64.sh
#       BUILD_PYTHON=python3.10 the build machine's CPython 3.10 that CPython's cross configure
#                               needs (default: python3.10 on PATH or ~/.pyenv/versions/3.10.*)
#       HBM_VDIFF_ACCEPT_KNOWN=1 do not fail on the KNOWN differences (defects of ours, to fix)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/tools/vendor_diff
work=${HBM_VDIFF_WORK:-$repo/build/vdiff}
mkdir -p "$work" && work=$(cd "$work" && pwd)
suite=${HBM_DEBIAN_SUITE:-bookworm}
root=$work/debian-$suite-arm64
logs=$work/logs
mkdir -p "$logs" "$work/wheels"
vendor_spec="hbm-runtime==0.1.0.post1"
numpy_spec="numpy==1.26.4"
backend_spec="nanobind-backend>=1.0"
all_steps=tools,root,python,wheels,ours,double,install,probe,compare
steps=$all_steps
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --steps=*) steps=${1#--steps=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
for s in ${steps//,/ }; do
  [[ ",$all_steps," == *",$s,"* ]] || { echo "run.sh: unknown step '$s' (steps: $all_steps)" >&2; exit 2; }
done
want() { [[ ",$steps," == *",$1,"* ]]; }
src_arg=${1:-}
vendor_wheel=${2:-}
if want python && [ -z "$src_arg" ]; then
  echo "usage: tools/vendor_diff/run.sh [--steps LIST] CPYTHON_SRC [VENDOR_WHEEL]" >&2; exit 2
fi

start=$SECONDS
step_start=$SECONDS
timings=()
step() {
  if [ -n "${current:-}" ]; then timings+=("$(printf '%5ss  %s' "$((SECONDS - step_start))" "$current")"); fi
  current="$*"; step_start=$SECONDS
  printf '\n=== [%4ss] %s ===\n' "$((SECONDS - start))" "$*"
}
fail() { echo "vendor_diff: $*" >&2; exit 2; }
quiet_pip() { grep -v -e '^WARNING: Location' -e 'WARNING: Running pip as' -e '^\[notice\]' || true; }
apt_mirror() {
  sed -n -e 's/^URIs: *\([^ ]*\/debian\)$/\1/p' -e 's/^deb \(\[[^]]*\] \)\?\([^ ]*\/debian\) .*/\2/p' \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1 || true
}
# The host Python that runs pip downloads and compare.py (any CPython >= 3.8 with pip).
host_python=$(command -v python3 || true)
[ -n "$host_python" ] || fail "no python3 on this machine"

# ---- tools: cross compiler, qemu, debootstrap -------------------------------------------------
if want tools; then
  step "tools: cross compiler, qemu-user-static, debootstrap"
  if [ "${HBM_CROSS_NO_APT:-0}" != 1 ]; then
    [ "$(id -u)" -eq 0 ] || fail "run as root (apt-get, debootstrap, chroot), or set HBM_CROSS_NO_APT=1"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
      gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user qemu-user-static binfmt-support \
      debootstrap make >/dev/null
  fi
  for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ qemu-aarch64-static debootstrap chroot make; do
    command -v "$tool" >/dev/null || fail "$tool not found"
  done
fi

# ---- root: a Debian arm64 root (unpacked packages, nothing run) --------------------------------
if want root; then
  step "arm64 root: Debian $suite at $root"
  if [ ! -f "$root/.hbm-root-complete" ]; then
    mirror=${HBM_DEBIAN_MIRROR:-$(apt_mirror)}
    rm -rf "$root"
    # --foreign: download and unpack only. The -dev packages are what CPython's extension
    # modules (ctypes, zlib, ssl, ...) build against; python3 (3.11) itself is not used.
    debootstrap --arch=arm64 --variant=minbase --foreign \
      --include=python3-dev,python3-venv,python3-pip,ca-certificates,libffi-dev,zlib1g-dev,libexpat1-dev,libbz2-dev,liblzma-dev,libsqlite3-dev,uuid-dev,libssl-dev \
      "$suite" "$root" $mirror >"$logs/debootstrap.log" 2>&1 ||
      { tail -n 20 "$logs/debootstrap.log"; fail "debootstrap failed"; }
    for deb in "$root"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$root"; done
    touch "$root/.hbm-root-complete"
  fi
  echo "root ready: $(ls "$root"/var/cache/apt/archives/*.deb | wc -l) packages unpacked"
fi
[ -f "$root/.hbm-root-complete" ] || fail "no arm64 root at $root (run the root step)"

# ---- python: CPython 3.10 cross-built for aarch64, installed as /opt/py310 in the root -------
py_prefix=/opt/py310
target_python=$py_prefix/bin/python3.10
if want python; then
  step "CPython 3.10 for aarch64 (cross build) -> $root$py_prefix"
  src_work=$work/cpython-src
  if [ -d "$src_arg" ] && [ -f "$src_arg/configure" ]; then
    src_id="dir:$(cd "$src_arg" && pwd):$(sed -n 's/^#define PY_VERSION[[:space:]]*"\(.*\)"/\1/p' "$src_arg/Include/patchlevel.h" 2>/dev/null)"
  elif git --git-dir="$src_arg" rev-parse --verify -q HEAD >/dev/null 2>&1 ||
       git --git-dir="$src_arg/.git" rev-parse --verify -q HEAD >/dev/null 2>&1; then
    gitdir=$src_arg; [ -d "$src_arg/.git" ] && gitdir=$src_arg/.git
    src_id="git:$(git --git-dir="$gitdir" rev-parse HEAD)"
  else
    fail "CPYTHON_SRC=$src_arg is neither a source tree (with configure) nor a git directory"
  fi
  if [ -x "$root$target_python" ] && [ "$(cat "$work/.python-built-from" 2>/dev/null)" = "$src_id" ]; then
    echo "already built from $src_id"
  else
    rm -rf "$src_work" && mkdir -p "$src_work"
    if [[ $src_id == git:* ]]; then
      # Blobs missing from the clone (a partial snapshot) are left out of the export.
      missing=$(git --git-dir="$gitdir" ls-tree -r HEAD | awk '$2 == "blob" {print $3}' |
        git --git-dir="$gitdir" cat-file --batch-check 2>/dev/null | awk '$2 == "missing" {print $1}' || true)
      excludes=()
      if [ -n "$missing" ]; then
        while read -r path; do excludes+=(":!$path"); echo "left out (blob missing from the clone): $path"; done < <(
          git --git-dir="$gitdir" ls-tree -r HEAD | awk 'NR == FNR {m[$1] = 1; next} $2 == "blob" && ($3 in m) {sub(/^[^\t]*\t/, ""); print}' \
            <(printf '%s\n' "$missing") -)
      fi
      git --git-dir="$gitdir" archive HEAD -- . "${excludes[@]}" | tar -x -C "$src_work"
    else
      cp -a "$src_arg/." "$src_work/"
    fi
    version=$(sed -n 's/^#define PY_VERSION[[:space:]]*"\(.*\)"/\1/p' "$src_work/Include/patchlevel.h")
    [[ $version == 3.10.* ]] || fail "CPYTHON_SRC is CPython '$version', not 3.10 (the vendor wheel is cp310)"
    echo "CPython $version from $src_id"
    # CPython 3.10's cross configure runs python3.10 from PATH for the build steps.
    build_python=${BUILD_PYTHON:-}
    if [ -z "$build_python" ]; then
      for p in "$(command -v python3.10 || true)" "$HOME"/.pyenv/versions/3.10.*/bin/python3.10; do
        if [ -x "$p" ] && "$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
          build_python=$p; break
        fi
      done
    fi
    [ -n "$build_python" ] || fail "no CPython 3.10 on this machine for the cross build (set BUILD_PYTHON)"
    bpdir=$work/build-python-bin
    rm -rf "$bpdir" && mkdir -p "$bpdir"
    ln -s "$build_python" "$bpdir/python3.10"
    echo "build machine's Python: $build_python"
    cat >"$src_work/config.site" <<'EOF'
ac_cv_file__dev_ptmx=yes
ac_cv_file__dev_ptc=no
ac_cv_buggy_getaddrinfo=no
EOF
    (
      cd "$src_work"
      export PATH="$bpdir:$PATH" CONFIG_SITE="$src_work/config.site"
      ./configure --host=aarch64-linux-gnu --build=x86_64-linux-gnu --prefix=$py_prefix \
        --enable-shared --with-system-ffi --without-ensurepip \
        CC="aarch64-linux-gnu-gcc --sysroot=$root" CXX="aarch64-linux-gnu-g++ --sysroot=$root" \
        LDFLAGS="-Wl,-rpath,$py_prefix/lib" >"$logs/cpython-configure.log" 2>&1 ||
        { tail -n 30 "$logs/cpython-configure.log"; exit 1; }
      make -j"$(nproc)" >"$logs/cpython-make.log" 2>&1 || { tail -n 40 "$logs/cpython-make.log"; exit 1; }
      rm -rf "$work/py310-dest"
      make install DESTDIR="$work/py310-dest" >"$logs/cpython-install.log" 2>&1 ||
        { tail -n 40 "$logs/cpython-install.log"; exit 1; }
    ) || fail "the CPython cross build failed (logs in $logs)"
    # Optional modules that did not build (curses, dbm, readline, tkinter, nis: not needed).
    sed -n '/necessary bits to build/,/^To find/p; /Failed to build these modules/,/^$/p' \
      "$logs/cpython-make.log" | grep -v -e '^To find' -e '^$' || true
    rm -rf "${root:?}$py_prefix" && mkdir -p "$root/opt"
    cp -a "$work/py310-dest$py_prefix" "$root$py_prefix"
    echo "$src_id" >"$work/.python-built-from"
  fi
fi

# ---- wheels: the vendor's, numpy and nanobind-backend for cp310 aarch64 -------------------------
if want wheels; then
  step "wheels: $vendor_spec, $numpy_spec, $backend_spec (cp310 aarch64)"
  pip_dl() {  # pip_dl SPEC PLATFORM...: one cp310 aarch64 wheel into $work/wheels
    local spec=$1; shift
    local plats=()
    for p in "$@"; do plats+=(--platform "$p"); done
    "$host_python" -m pip download -q --disable-pip-version-check "$spec" --no-deps --only-binary=:all: \
      --python-version 3.10 --implementation cp --abi cp310 "${plats[@]}" -d "$work/wheels" 2>&1 | quiet_pip
  }
  if [ -z "$vendor_wheel" ]; then pip_dl "$vendor_spec" manylinux_2_34_aarch64; fi
  pip_dl "$numpy_spec" manylinux_2_17_aarch64 manylinux2014_aarch64
  pip_dl "$backend_spec" manylinux_2_28_aarch64 manylinux_2_17_aarch64 manylinux2014_aarch64
  ls -1 "$work/wheels"
fi
if [ -z "$vendor_wheel" ]; then
  vendor_wheel=$(ls "$work"/wheels/hbm_runtime-0.1.0.post1-cp310-*aarch64*.whl 2>/dev/null | head -n 1 || true)
fi

# ---- ours: this project's aarch64 wheel --------------------------------------------------------
our_wheel=${HBM_VDIFF_OUR_WHEEL:-}
if want ours && [ -z "$our_wheel" ]; then
  step "our aarch64 wheel (tools/cross/build_aarch64.sh, build only)"
  # The root made above serves as the sysroot; the script's own work folder is inside ours.
  HBM_SYSROOT="$root" HBM_CROSS_WORK="$work/cross" HBM_CROSS_NO_TEST=1 HBM_CROSS_NO_APT=1 \
    "$repo/tools/cross/build_aarch64.sh" >"$logs/our-wheel.log" 2>&1 ||
    { tail -n 30 "$logs/our-wheel.log"; fail "building our aarch64 wheel failed (log: $logs/our-wheel.log)"; }
  grep -e '^wheel:' -e '^needs:' -e '^glibc:' "$logs/our-wheel.log" || true
fi
if [ -z "$our_wheel" ]; then
  our_wheel=$(ls "$work"/cross/dist/hbm_runtime_universal-*-cp310-abi3-linux_aarch64.whl 2>/dev/null | head -n 1 || true)
fi

# ---- double: the UCP test double for aarch64 (10-dim layout, as the vendor binary reads) ------
double_build=$work/ucp_double
if want double; then
  step "the UCP test double, cross-built (UCP_DOUBLE_DIMS=10)"
  cmake_bin=$(command -v cmake || true)
  [ -x "$work/cross/buildenv-3.11/bin/cmake" ] && cmake_bin=$work/cross/buildenv-3.11/bin/cmake
  [ -n "$cmake_bin" ] || fail "cmake not found"
  HBM_SYSROOT="$root" "$cmake_bin" -S "$repo/tests/ucp_double" -B "$double_build" \
    -DCMAKE_TOOLCHAIN_FILE="$repo/toolchains/aarch64.cmake" -DHBM_SYSROOT="$root" \
    -DCMAKE_BUILD_TYPE=Release -DUCP_DOUBLE_DIMS=10 >"$logs/double-configure.log" 2>&1 ||
    { tail -n 30 "$logs/double-configure.log"; fail "configuring the double failed"; }
  "$cmake_bin" --build "$double_build" -j "$(nproc)" >"$logs/double-build.log" 2>&1 ||
    { tail -n 30 "$logs/double-build.log"; fail "building the double failed"; }
  aarch64-linux-gnu-readelf -h "$double_build/lib/libdnn.so" | grep -q 'AArch64' || fail "the double is not AArch64"
  echo "double: $double_build/lib"
fi

# ---- install: everything into the root's /opt/vdiff -------------------------------------------
stage=/opt/vdiff
unzip_into() {  # unzip_into WHEEL DIR: a wheel unpacked is an installed pure-path package
  "$host_python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"
}
if want install; then
  step "install into $root$stage: numpy + nanobind-backend (site-packages), vendor and ours (own PYTHONPATH each)"
  [ -x "$root$target_python" ] || fail "no $target_python in the root (run the python step)"
  [ -n "$vendor_wheel" ] && [ -f "$vendor_wheel" ] || fail "no vendor wheel (give VENDOR_WHEEL or run the wheels step)"
  [ -n "$our_wheel" ] && [ -f "$our_wheel" ] || fail "no aarch64 wheel of ours (run the ours step or set HBM_VDIFF_OUR_WHEEL)"
  [ -f "$double_build/lib/libdnn.so" ] || fail "no cross-built double (run the double step)"
  site=$root$py_prefix/lib/python3.10/site-packages
  for spec in numpy-1.26.4 nanobind_backend-; do
    whl=$(ls "$work"/wheels/${spec}*aarch64*.whl 2>/dev/null | head -n 1 || true)
    [ -n "$whl" ] || fail "no $spec* aarch64 wheel in $work/wheels (run the wheels step)"
    unzip_into "$whl" "$site"
  done
  rm -rf "${root:?}$stage" && mkdir -p "$root$stage"/{vendor,ours,ucp,out}
  unzip_into "$vendor_wheel" "$root$stage/vendor"
  unzip_into "$our_wheel" "$root$stage/ours"
  cp -r "$double_build/lib" "$root$stage/ucp/lib"
  cp -r "$repo/tests/ucp_double/models" "$root$stage/models"
  cp "$here/probe.py" "$root$stage/"
  cp "$(command -v qemu-aarch64-static)" "$root/usr/bin/qemu-aarch64-static"
  {
    echo "vendor wheel: $(basename "$vendor_wheel") sha256 $(sha256sum "$vendor_wheel" | cut -c1-16)"
    echo "our wheel:    $(basename "$our_wheel") sha256 $(sha256sum "$our_wheel" | cut -c1-16)"
    echo "our commit:   $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
      git -C "$repo" diff --quiet HEAD -- src tests/ucp_double 2>/dev/null || echo ' (with uncommitted changes in src/ or tests/ucp_double/)')"
  } | tee "$work/installed.txt"
fi

# ---- probe: the same script with each package ---------------------------------------------------
target() {  # target [NAME=VALUE...] PROGRAM ARGS...: an arm64 program in the root, clean env
  local envs=()
  while [[ $# -gt 0 && $1 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do envs+=("$1"); shift; done
  env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 "${envs[@]}" \
    "$chroot_bin" "$root" /usr/bin/qemu-aarch64-static "$@"
}
chroot_bin=$(command -v chroot || echo /usr/sbin/chroot)
if want probe; then
  [ -f "$root$stage/probe.py" ] || fail "nothing installed in $root$stage (run the install step)"
  cp "$here/probe.py" "$root$stage/"   # the probe as it is now
  for side in vendor ours; do
    step "probe: $side package (qemu)"
    rm -f "$root$stage/out/$side.json"
    # Crash-prone cases run in child interpreters: qemu-aarch64-static is an x86_64 program,
    # so the probe can start one inside the root without binfmt_misc.
    target PYTHONPATH=$stage/$side LD_LIBRARY_PATH=$stage/ucp/lib HBM_UCP_LIB_DIR=$stage/ucp/lib \
      VDIFF_CHILD_PREFIX=/usr/bin/qemu-aarch64-static \
      "$target_python" "$stage/probe.py" --side "$side" --models "$stage/models" \
      --out "$stage/out/$side.json" >"$logs/probe-$side.log" 2>&1 ||
      { tail -n 30 "$logs/probe-$side.log"; fail "the probe failed with the $side package (log: $logs/probe-$side.log)"; }
    tail -n 2 "$logs/probe-$side.log"
    cp "$root$stage/out/$side.json" "$work/report-$side.json"
  done
fi

# ---- compare ---------------------------------------------------------------------------------
rc=0
if want compare; then
  step "compare (tools/vendor_diff/compare.py)"
  accept=()
  [ "${HBM_VDIFF_ACCEPT_KNOWN:-0}" = 1 ] && accept=(--accept-known)
  "$host_python" "$here/compare.py" "$work/report-vendor.json" "$work/report-ours.json" \
    --json "$work/diff.json" "${accept[@]}" | tee "$logs/compare.txt" || rc=${PIPESTATUS[0]}
fi

step "summary"
printf '%s\n' "${timings[@]}"
echo "total $((SECONDS - start)) s; exit $rc"
exit "$rc"

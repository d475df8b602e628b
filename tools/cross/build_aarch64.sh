#!/usr/bin/env bash
# Cross-builds the aarch64 cp310-abi3 wheel on an x86_64 Debian/Ubuntu machine and tests it
# under qemu-user in an arm64 root file system, without a board:
#   1. apt-get: the cross compiler, qemu-user(-static), binfmt-support, debootstrap,
#      debian-archive-keyring
#   2. the target root: $HBM_SYSROOT (a BSP sysroot) or, by default, a Debian arm64 root
#      assembled here from Debian's packages (debootstrap --foreign, packages unpacked)
#   3. the wheel: pip wheel with toolchains/aarch64.cmake against the root's Python headers,
#      tagged linux_aarch64; abi3audit --strict
#   4. in the root, under qemu (chroot + qemu-aarch64-static): a venv, the wheel, import,
#      metadata enums, scheduler; loading .onnx without OpenVINO (EngineUnavailableError);
#      pip install openvino and a host-engine run, checked against onnxruntime run on the
#      build machine (onnxruntime's aarch64 build crashes under qemu-user)
#   5. the UCP test double (tests/ucp_double) cross-built: its engine_check, and a .hbm
#      load + run through the wheel
#   The board artifacts, made after the wheel (step 3) and tested after step 5:
#   - the offline bundle for the board's Python (tools/cross/make_bundle.sh: the wheel, the
#     numpy and nanobind-backend wheels, install.sh, SHA256SUMS, a CycloneDX SBOM), .tar.gz
#   - python3-hbm-runtime_<version>-1_arm64.deb for the image's python3 (tools/cross/make_deb.sh)
#   - dist/SHA256SUMS over the wheel, the bundle archive, its SBOM and the .deb
#   6. in the root, under qemu: the bundle's install.sh into a fresh venv without network,
#      import + a .hbm run through the test double (arm64 programs that start others, as
#      dpkg and install.sh do, need binfmt_misc: registered for the run when missing; the
#      Debian root is finished once with debootstrap's second stage)
#   7. dpkg -i of the .deb, the same checks with the system python3, dpkg -r
# Prints a timing per step; exits non-zero on the first failure.
#
# Usage: tools/cross/build_aarch64.sh
# Env:   HBM_SYSROOT=/path    target root (BSP sysroot) used to build and to test (it needs
#                             python3 + its headers; testing also needs pip/venv in it)
#        HBM_CROSS_PREFIX     compiler prefix (default aarch64-linux-gnu-)
#        HBM_CROSS_WORK=dir   work folder (default build/cross); the Debian root is kept there
#        HBM_DEBIAN_SUITE     Debian suite of the default root (default bookworm)
#        HBM_DEBIAN_MIRROR    (default: the first Debian mirror in this machine's apt sources)
#        HBM_CROSS_NO_APT=1   do not run apt-get (tools already installed)
#        HBM_CROSS_NO_TEST=1  build only
#        HBM_BUNDLE_PYTHON=3.X  the board's Python, for the offline bundle (default 3.10: RDK
#                             S100 images are Ubuntu 22.04); the bundle tested in the root is
#                             made the same way for the root's Python
#        HBM_BUNDLE_GLIBC, HBM_BUNDLE_NUMPY, HBM_DEB_MAINTAINER, HBM_DEB_NUMPY, ...: see
#                             tools/cross/make_bundle.sh and tools/cross/make_deb.sh
#        PYTHON=python3.X     the build machine's Python (pip, scikit-build-core, CMake's
#                             FindPython); it must be the target's 3.X (default: python3.X
#                             from PATH or ~/.pyenv/versions/3.X.*, X read from the root)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${HBM_CROSS_WORK:-$root/build/cross}
mkdir -p "$work" && work=$(cd "$work" && pwd)
suite=${HBM_DEBIAN_SUITE:-bookworm}
# The mirror this machine's apt already uses (deb822 "URIs:" or one-line "deb" sources).
apt_mirror() {
  sed -n -e 's/^URIs: *\([^ ]*\/debian\)$/\1/p' -e 's/^deb \(\[[^]]*\] \)\?\([^ ]*\/debian\) .*/\2/p' \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n 1 || true
}
mirror=${HBM_DEBIAN_MIRROR:-$(apt_mirror)}
export HBM_CROSS_PREFIX=${HBM_CROSS_PREFIX:-aarch64-linux-gnu-}
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/src/hbm_runtime/_version.py")
start=$SECONDS
step_start=$SECONDS
timings=()

step() {  # step TITLE: closes the previous step's timing, opens this one
  if [ -n "${current:-}" ]; then timings+=("$(printf '%5ss  %s' "$((SECONDS - step_start))" "$current")"); fi
  current="$*"; step_start=$SECONDS
  printf '\n=== [%4ss] %s ===\n' "$((SECONDS - start))" "$*"
}
fail() { echo "build_aarch64: $*" >&2; exit 1; }
quiet_pip() { grep -v -e '^WARNING: Location' -e 'WARNING: Running pip as' -e '^\[notice\]' || true; }

# ---- 1. tools ----------------------------------------------------------------------------------
step "apt-get: cross compiler, qemu-user, debootstrap"
if [ "${HBM_CROSS_NO_APT:-0}" != 1 ]; then
  [ "$(id -u)" -eq 0 ] || fail "run as root (apt-get, debootstrap, chroot), or set HBM_CROSS_NO_APT=1"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # debian-archive-keyring: debootstrap checks the Debian root's packages with it (already
  # there on Debian; needed on Ubuntu).
  apt-get install -y -qq --no-install-recommends \
    g++-aarch64-linux-gnu qemu-user qemu-user-static binfmt-support debootstrap debian-archive-keyring >/dev/null
fi
tools=("${HBM_CROSS_PREFIX}g++")
[ "${HBM_CROSS_NO_TEST:-0}" = 1 ] || tools+=(qemu-aarch64-static)  # a build alone needs no qemu
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || fail "$tool not found"
done
"${HBM_CROSS_PREFIX}g++" --version | head -n 1
qemu=$(command -v qemu-aarch64-static || true)

# ---- 2. the target root ------------------------------------------------------------------------
if [ -n "${HBM_SYSROOT:-}" ]; then
  step "target root: HBM_SYSROOT=$HBM_SYSROOT"
  sysroot=$(cd "$HBM_SYSROOT" && pwd)
else
  sysroot=$work/debian-$suite-arm64
  step "target root: Debian $suite arm64 at $sysroot"
  # python3-numpy: the .deb's dependency, for its dpkg -i test. The marker holds this list
  # and the layout: a root made otherwise is made again.
  root_packages=python3-dev,python3-venv,python3-pip,python3-numpy,ca-certificates
  root_marker="$root_packages merged-usr"
  if [ "$(cat "$sysroot/.hbm-root-complete" 2>/dev/null)" != "$root_marker" ]; then
    rm -rf "$sysroot"
    # --foreign: download and unpack only, no arm64 program runs. The packages are then
    # unpacked as they are (no maintainer scripts): enough for a sysroot and to run Python.
    # (The package tests finish the install, debootstrap's second stage, under qemu.)
    debootstrap --arch=arm64 --variant=minbase --foreign --include="$root_packages" \
      "$suite" "$sysroot" "$mirror" >"$work/debootstrap.log" 2>&1 ||
      { tail -n 20 "$work/debootstrap.log"; fail "debootstrap failed"; }
    # --keep-directory-symlink: /bin, /lib, /sbin stay links into /usr (merged /usr, as
    # debootstrap made them and Debian 12 requires).
    for deb in "$sysroot"/var/cache/apt/archives/*.deb; do
      dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$sysroot" ||
        fail "cannot unpack $deb"
    done
    echo "$root_marker" >"$sysroot/.hbm-root-complete"
  fi
fi
# The newest python3.X with headers in the root.
py_inc=$(printf '%s\n' "$sysroot"/usr/include/python3.*/Python.h | sort -V | tail -n 1)
py_inc=${py_inc%/Python.h}
[ -f "$py_inc/Python.h" ] || fail "no usr/include/python3.X/Python.h in $sysroot (install python3-dev there)"
echo "Python headers: $py_inc"
# FindPython wants the build machine's interpreter and the target's headers of one version.
target_minor=${py_inc##*/python}
python=${PYTHON:-}
if [ -z "$python" ]; then
  for p in "$(command -v "python$target_minor" || true)" "$HOME"/.pyenv/versions/"$target_minor".*/bin/python3 \
           "$(command -v python3 || true)"; do
    if [ -x "$p" ] && [ "$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$target_minor" ]; then
      python=$p; break
    fi
  done
  [ -n "$python" ] || fail "no Python $target_minor on this machine (the target's version): set PYTHON"
fi
echo "build machine's Python: $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))"

# ---- 3. the wheel ------------------------------------------------------------------------------
step "cross-build the wheel (pip wheel, toolchains/aarch64.cmake)"
# The build environment is made here, for the build machine: with _PYTHON_HOST_PLATFORM set
# (it gives the wheel its linux_aarch64 tag), pip's own isolated environment would fetch
# aarch64 builds of cmake and ninja. The project's build requirements, plus cmake and ninja.
buildenv=$work/buildenv-$target_minor
[ -x "$buildenv/bin/python" ] || "$python" -m venv "$buildenv"
# Python 3.10 (the board's) has no tomllib: read pyproject.toml with tomli there.
"$buildenv/bin/python" -c 'import tomllib' 2>/dev/null ||
  "$buildenv/bin/python" -m pip install -q --disable-pip-version-check tomli 2>&1 | quiet_pip
requires_text=$("$buildenv/bin/python" - "$root/pyproject.toml" <<'EOF'
import sys
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))
EOF
) || fail "cannot read [build-system].requires from pyproject.toml"
mapfile -t requires <<<"$requires_text"
[ -n "${requires[0]}" ] || fail "pyproject.toml lists no build requirements"
"$buildenv/bin/python" -m pip install -q --disable-pip-version-check "${requires[@]}" cmake ninja 2>&1 | quiet_pip
rm -rf "$work/dist" && mkdir -p "$work/dist"
# The stub is not generated (the build cannot import an aarch64 module): the committed
# src/hbm_runtime/_hbm_ext.pyi ships.
_PYTHON_HOST_PLATFORM=linux-aarch64 HBM_SYSROOT="$sysroot" PATH="$buildenv/bin:$PATH" \
  "$buildenv/bin/python" -m pip wheel "$root" -w "$work/dist" --no-deps --no-build-isolation \
  --disable-pip-version-check \
  --config-settings=build-dir="$work/build-$target_minor" \
  --config-settings=cmake.define.CMAKE_TOOLCHAIN_FILE="$root/toolchains/aarch64.cmake" \
  --config-settings=cmake.define.HBM_SYSROOT="$sysroot" \
  --config-settings=cmake.define.Python_INCLUDE_DIR="$py_inc" \
  >"$work/wheel-build.log" 2>&1 || { tail -n 40 "$work/wheel-build.log"; fail "wheel build failed"; }
shopt -s nullglob
wheels=("$work"/dist/*.whl)
[ ${#wheels[@]} -eq 1 ] || fail "expected one wheel, got: ${wheels[*]:-none}"
wheel=${wheels[0]}
echo "wheel: $(basename "$wheel")"
[ "$(basename "$wheel")" = "hbm_runtime_universal-${version}-cp310-abi3-linux_aarch64.whl" ] ||
  fail "unexpected wheel name"
unzip -o -q "$wheel" 'hbm_runtime/_hbm_ext.abi3.so' -d "$work/so"
"${HBM_CROSS_PREFIX}readelf" -h "$work/so/hbm_runtime/_hbm_ext.abi3.so" | grep 'Machine:.*AArch64' >/dev/null ||
  fail "the extension is not an AArch64 ELF"
echo "needs: $("${HBM_CROSS_PREFIX}readelf" -d "$work/so/hbm_runtime/_hbm_ext.abi3.so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
echo "glibc: $("${HBM_CROSS_PREFIX}objdump" -T "$work/so/hbm_runtime/_hbm_ext.abi3.so" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)," \
  "libstdc++: $("${HBM_CROSS_PREFIX}objdump" -T "$work/so/hbm_runtime/_hbm_ext.abi3.so" | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -n 1)"
unzip -l "$wheel" | grep 'hbm_runtime/_hbm_ext.pyi' >/dev/null || fail "the stub is missing from the wheel"

step "abi3audit --strict"
[ -x "$work/tools/bin/abi3audit" ] || { "$python" -m venv "$work/tools" &&
  "$work/tools/bin/python" -m pip install -q --disable-pip-version-check abi3audit 2>&1 | quiet_pip; }
"$work/tools/bin/abi3audit" --strict --verbose "$wheel" || fail "abi3audit --strict failed"

# ---- 3b. the board artifacts: offline bundle and .deb -----------------------------------------
bundle_python=${HBM_BUNDLE_PYTHON:-3.10}
step "offline bundle for CPython $bundle_python (make_bundle.sh: pip download, SBOM)"
PYTHON="$python" HBM_BUNDLE_PYTHON="$bundle_python" HBM_BUNDLE_TOOLS="$work/tools" \
  "$root/tools/cross/make_bundle.sh" "$wheel" "$work/dist" || fail "make_bundle.sh failed"
bundle_name=hbm-runtime-universal-$version-py$bundle_python-aarch64

step ".deb for the image's python3 (make_deb.sh: dpkg-deb)"
# The build environment's Python has nanobind (its license goes into the .deb) and packaging.
PYTHON="$buildenv/bin/python" HBM_SYSROOT="$sysroot" "$root/tools/cross/make_deb.sh" "$wheel" "$work/dist" ||
  fail "make_deb.sh failed"
debs=("$work"/dist/python3-hbm-runtime_*_arm64.deb)
[ ${#debs[@]} -eq 1 ] || fail "expected one .deb, got: ${debs[*]:-none}"
deb=${debs[0]}
(cd "$work/dist" && sha256sum "$(basename "$wheel")" "$bundle_name.tar.gz" "$bundle_name.cdx.json" \
  "$(basename "$deb")" >SHA256SUMS)
echo "dist/SHA256SUMS:" && sed 's/^/  /' "$work/dist/SHA256SUMS"

if [ "${HBM_CROSS_NO_TEST:-0}" = 1 ]; then
  step "done (HBM_CROSS_NO_TEST=1: not tested)"
  printf '%s\n' "${timings[@]}"
  exit 0
fi

# ---- 4. the wheel on the target, under qemu -------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fail "testing under qemu needs chroot: run as root"
step "root: binfmt_misc for arm64; debootstrap --second-stage (qemu, once)"
# dpkg (which runs dpkg-deb and maintainer scripts), install.sh and venv's ensurepip start
# arm64 programs themselves: the kernel must hand those to qemu. Registered here for this
# run unless an entry already works in the root (qemu-user-static's own, flag F); removed
# at exit.
cp "$qemu" "$sysroot/usr/bin/qemu-aarch64-static"
binfmt_dir=/proc/sys/fs/binfmt_misc
binfmt_entry= binfmt_mounted=
binfmt_cleanup() {
  if [ -n "$binfmt_entry" ] && [ -e "$binfmt_entry" ]; then echo -1 >"$binfmt_entry" || true; fi
  if [ -n "$binfmt_mounted" ]; then umount "$binfmt_dir" || true; fi
}
trap binfmt_cleanup EXIT
if env -i PATH=/usr/bin:/bin "$(command -v chroot)" "$sysroot" /bin/true 2>/dev/null; then
  echo "binfmt_misc: arm64 programs already run in the root"
else
  if [ ! -e "$binfmt_dir/register" ]; then
    mount -t binfmt_misc binfmt_misc "$binfmt_dir" || fail "cannot mount binfmt_misc on $binfmt_dir"
    binfmt_mounted=1
  fi
  if [ -e "$binfmt_dir/hbm-qemu-aarch64" ]; then echo -1 >"$binfmt_dir/hbm-qemu-aarch64"; fi  # a stale one
  # The ELF header of aarch64 executables (qemu's scripts/qemu-binfmt-conf.sh); F: the
  # interpreter is opened now, so it works inside the chroot.
  printf '%s' ':hbm-qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$qemu"':F' \
    >"$binfmt_dir/register" || fail "cannot register qemu-aarch64 with binfmt_misc"
  binfmt_entry=$binfmt_dir/hbm-qemu-aarch64
  env -i PATH=/usr/bin:/bin "$(command -v chroot)" "$sysroot" /bin/true ||
    fail "arm64 programs do not run in the root through binfmt_misc"
  echo "binfmt_misc: registered $binfmt_entry ($qemu, flags F) for this run"
fi
if [ -z "${HBM_SYSROOT:-}" ] && [ ! -f "$sysroot/.hbm-root-configured" ]; then
  # The packages were only unpacked: configure them (maintainer scripts, dpkg's database),
  # as on an installed system, so that dpkg -i checks the .deb's dependencies for real.
  # In a private mount namespace: debootstrap's own /proc and /sys mounts end with it.
  [ -x "$sysroot/debootstrap/debootstrap" ] || fail "$sysroot has no /debootstrap: delete it to make it again"
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    "$(command -v unshare)" --mount --propagation private "$(command -v chroot)" "$sysroot" \
    /debootstrap/debootstrap --second-stage >"$work/second-stage.log" 2>&1 ||
    { tail -n 30 "$work/second-stage.log"; fail "debootstrap --second-stage failed (log: $work/second-stage.log)"; }
  touch "$sysroot/.hbm-root-configured"
  echo "configured: $(grep -c '^Package:' "$sysroot/var/lib/dpkg/status") packages in dpkg's database"
fi
# A .deb left installed by an interrupted run would be seen by the venvs below.
if env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$(command -v chroot)" "$sysroot" \
     dpkg-query -W -f='${Status}' python3-hbm-runtime 2>/dev/null | grep -q 'install ok installed'; then
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$(command -v chroot)" "$sysroot" dpkg --purge python3-hbm-runtime
fi

step "arm64 venv in the root (qemu), install the wheel"
# Inside the root, arm64 programs run through the static qemu copied there (the programs
# they start, through binfmt_misc, set up above).
cp "$qemu" "$sysroot/usr/bin/qemu-aarch64-static"
cp /etc/resolv.conf "$sysroot/etc/resolv.conf" 2>/dev/null || true
ca=/etc/ssl/certs/ca-certificates.crt
if [ -f "$ca" ]; then mkdir -p "$sysroot/etc/ssl/certs" && cp "$ca" "$sysroot$ca"; fi
stage=/tmp/hbm-cross
rm -rf "${sysroot:?}$stage" && mkdir -p "$sysroot$stage"
cp "$wheel" "$root/tools/cross/aarch64_smoke.py" "$root/src/hbm_runtime/models/demo_classifier.onnx" "$sysroot$stage/"
chroot=$(command -v chroot)
# OpenVINO reads the CPU topology from /proc and /sys (without them it spins or crashes).
mounted=()
unmount_all() { local m; for m in "${mounted[@]}"; do umount -R "$m" 2>/dev/null || umount -l "$m" || true; done; }
trap 'unmount_all; binfmt_cleanup' EXIT
for fs in proc sys; do
  if ! mountpoint -q "$sysroot/$fs"; then
    mkdir -p "$sysroot/$fs"
    if [ $fs = proc ]; then mount --bind /proc "$sysroot/proc"; else mount --rbind /sys "$sysroot/sys"; fi
    mount --make-rslave "$sysroot/$fs"
    mounted+=("$sysroot/$fs")
  fi
done
target_wrap=()  # e.g. (unshare --net --): run the next target calls without a network
target() {  # target [NAME=VALUE...] PROGRAM ARGS...: an arm64 program in the root, clean env
  local envs=()
  while [[ $# -gt 0 && $1 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do envs+=("$1"); shift; done
  env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore PIP_CACHE_DIR=/var/cache/hbm-pip PIP_DEFAULT_TIMEOUT=120 "${envs[@]}" \
    "${target_wrap[@]}" "$chroot" "$sysroot" /usr/bin/qemu-aarch64-static "$@"
}
venv=$stage/venv
target /usr/bin/python3 -m venv --without-pip --system-site-packages "$venv"
tpython() { target "$venv/bin/python" "$@"; }
tpython -c 'import platform, sys; print("target Python", sys.version.split()[0], platform.machine())'
# --ignore-installed: numpy and nanobind-backend from PyPI, not the root's python3-numpy.
tpython -m pip install -q --ignore-installed "$stage/$(basename "$wheel")" 2>&1 | quiet_pip
tpython -m pip list 2>/dev/null | grep -i -E '^(hbm-runtime-universal|numpy|nanobind-backend) ' || true

step "import, enums, scheduler (qemu)"
tpython "$stage/aarch64_smoke.py" basic

step "an .onnx model without OpenVINO: EngineUnavailableError (qemu)"
tpython "$stage/aarch64_smoke.py" no-openvino "$stage/demo_classifier.onnx"

step "pip install openvino; host-engine run (qemu), checked against onnxruntime on the build machine"
openvino_ok=0
if tpython -m pip install -q openvino 2>&1 | quiet_pip; then
  tpython "$stage/aarch64_smoke.py" openvino "$stage/demo_classifier.onnx" "$stage/openvino_run.npz"
  "$work/tools/bin/python" -m pip install -q --disable-pip-version-check numpy onnxruntime 2>&1 | quiet_pip
  "$work/tools/bin/python" - "$root/src/hbm_runtime/models/demo_classifier.onnx" "$sysroot$stage/openvino_run.npz" <<'EOF'
import sys
import numpy as np
import onnxruntime as ort
saved = np.load(sys.argv[2])
inputs = {k[3:]: saved[k] for k in saved.files if k.startswith("in:")}
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
for meta, ref in zip(sess.get_outputs(), sess.run(None, inputs)):
    err = float(np.max(np.abs(saved["out:" + meta.name] - ref)))
    assert err < 1e-4, f"output {meta.name}: aarch64 OpenVINO vs x86_64 onnxruntime max abs diff {err}"
    print(f"ok: output {meta.name} matches onnxruntime on the build machine (max abs diff {err:.1e})")
EOF
  openvino_ok=1
else
  echo "openvino is not installable for aarch64 here: host-engine run skipped"
fi

# ---- 5. the UCP test double, cross-built -------------------------------------------------------
ucp_ok=skipped
if [ -f "$root/tests/ucp_double/CMakeLists.txt" ]; then
  step "UCP test double: cross-build, engine_check and a .hbm run (qemu)"
  ucp_build=$work/ucp_double
  PATH="$buildenv/bin:$PATH" HBM_SYSROOT="$sysroot" cmake -S "$root/tests/ucp_double" -B "$ucp_build" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="$root/toolchains/aarch64.cmake" -DHBM_SYSROOT="$sysroot" \
    -DCMAKE_BUILD_TYPE=Release -DUCP_DOUBLE_DIMS=10 -DHBM_SOURCE_DIR="$root" >"$work/ucp-configure.log" 2>&1 ||
    { tail -n 30 "$work/ucp-configure.log"; fail "configuring the UCP double failed"; }
  PATH="$buildenv/bin:$PATH" cmake --build "$ucp_build" -j "$(nproc)" >"$work/ucp-build.log" 2>&1 ||
    { tail -n 30 "$work/ucp-build.log"; fail "building the UCP double failed"; }
  rm -rf "${sysroot:?}$stage/ucp" && mkdir -p "$sysroot$stage/ucp"
  cp -r "$ucp_build/lib" "$ucp_build/broken" "$root/tests/ucp_double/models" "$sysroot$stage/ucp/"
  [ -x "$ucp_build/engine_check" ] && cp "$ucp_build/engine_check" "$sysroot$stage/ucp/"
  if [ -x "$sysroot$stage/ucp/engine_check" ]; then
    target "$stage/ucp/engine_check" "$stage/ucp/lib" "$stage/ucp/broken" "$stage/ucp/models" | tail -n 5
  fi
  target HBM_UCP_LIB_DIR="$stage/ucp/lib" "$venv/bin/python" "$stage/aarch64_smoke.py" ucp \
    "$stage/ucp/models/lanenet256x512.hbm"
  ucp_ok=yes
fi

# ---- 6. the offline bundle in the root, without network --------------------------------------
ucp_model=$stage/ucp/models/lanenet256x512.hbm
package_smoke() {  # package_smoke PYTHON: import + scheduler checks, and a .hbm run when the double is there
  target "$1" "$stage/aarch64_smoke.py" basic
  if [ "$ucp_ok" = yes ]; then
    target HBM_UCP_LIB_DIR="$stage/ucp/lib" "$1" "$stage/aarch64_smoke.py" ucp "$ucp_model"
  fi
}
step "offline bundle: install.sh into a fresh venv without network (qemu)"
unshare=$(command -v unshare) || fail "unshare (util-linux) not found"
# The board's bundle: its checksums verified with the root's tools, and install.sh refuses
# an interpreter it was not made for (unless the root has the board's Python).
rm -rf "${sysroot:?}$stage/bundles" && mkdir -p "$sysroot$stage/bundles"
tar -xzf "$work/dist/$bundle_name.tar.gz" -C "$sysroot$stage/bundles"
if [ "$target_minor" != "$bundle_python" ]; then
  if target /bin/sh "$stage/bundles/$bundle_name/install.sh" /usr/bin/python3 >"$work/bundle-refuse.log" 2>&1; then
    fail "install.sh of the $bundle_python bundle accepted Python $target_minor"
  fi
  grep -q 'checksums OK' "$work/bundle-refuse.log" && grep -q "this bundle is for CPython $bundle_python" "$work/bundle-refuse.log" ||
    { cat "$work/bundle-refuse.log"; fail "install.sh did not check then refuse as expected"; }
  sed 's/^/  /' "$work/bundle-refuse.log"
  # The same bundle, made for the root's Python, is the one installed here.
  echo "making the bundle for the root's CPython $target_minor"
  PYTHON="$python" HBM_BUNDLE_PYTHON="$target_minor" HBM_BUNDLE_TOOLS="$work/tools" \
    "$root/tools/cross/make_bundle.sh" "$wheel" "$work/test-bundle" >"$work/test-bundle.log" 2>&1 ||
    { tail -n 20 "$work/test-bundle.log"; fail "make_bundle.sh for Python $target_minor failed"; }
  test_bundle=hbm-runtime-universal-$version-py$target_minor-aarch64
  tar -xzf "$work/test-bundle/$test_bundle.tar.gz" -C "$sysroot$stage/bundles"
else
  test_bundle=$bundle_name
fi
bvenv=$stage/bundle-venv
target /usr/bin/python3 -m venv "$bvenv"  # with pip (ensurepip), no system site-packages
target_wrap=("$unshare" --net --)
if target "$bvenv/bin/python" -c 'import socket; socket.create_connection(("pypi.org", 443), timeout=10)' 2>/dev/null; then
  fail "the network namespace still reaches the network"
fi
echo "no network in the namespace: ok"
target /bin/sh "$stage/bundles/$test_bundle/install.sh" "$bvenv/bin/python" 2>&1 | quiet_pip
target_wrap=()
target "$bvenv/bin/python" -m pip list --format=freeze 2>/dev/null | sed 's/^/  /'
bundle_numpy=$(sed -n 's/^numpy==\([^ ]*\).*/\1/p' "$sysroot$stage/bundles/$test_bundle/requirements.txt")
target "$bvenv/bin/python" -c "import numpy; assert numpy.__version__ == '$bundle_numpy', numpy.__version__" ||
  fail "the venv's numpy is not the bundle's $bundle_numpy"
package_smoke "$bvenv/bin/python"

# ---- 7. the .deb in the root, with the system python3 ------------------------------------------
step ".deb: dpkg -i, system python3, dpkg -r (qemu)"
sbin_path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cp "$deb" "$sysroot$stage/"
# Another hbm_runtime first on sys.path (as the vendor's, installed with pip, would be): the
# postinst must name it.
shadow=/usr/local/lib/python3.$(echo "$target_minor" | cut -d. -f2)/dist-packages/hbm_runtime
mkdir -p "$sysroot$shadow" && echo '"""another hbm_runtime"""' >"$sysroot$shadow/__init__.py"
deb_out=$(target "$sbin_path" /usr/bin/dpkg -i "$stage/$(basename "$deb")" 2>&1) ||
  { echo "$deb_out"; fail "dpkg -i failed"; }
echo "$deb_out" | sed 's/^/  /'
[[ $deb_out == *"python3 imports hbm_runtime from $shadow/__init__.py"* ]] ||
  fail "the postinst did not warn about $shadow"
rm -rf "${sysroot:?}$shadow"
deb_status=$(target "$sbin_path" /usr/bin/dpkg-query -W -f='${Package} ${Version} ${Architecture}: ${Status}' python3-hbm-runtime)
echo "$deb_status"
[[ $deb_status == *"install ok installed" ]] || fail "python3-hbm-runtime is not installed"
dist_packages=/usr/lib/python3/dist-packages
target /usr/bin/python3 -c "import hbm_runtime, numpy, sys
assert hbm_runtime.__file__ == '$dist_packages/hbm_runtime/__init__.py', hbm_runtime.__file__
assert numpy.__file__.startswith('$dist_packages/numpy/'), numpy.__file__
print('system python3', sys.version.split()[0], 'imports hbm_runtime', hbm_runtime.__version__,
      'from $dist_packages, numpy', numpy.__version__, '(python3-numpy)')"
ls "$sysroot$dist_packages"/hbm_runtime/__pycache__/__init__.cpython-3*.pyc >/dev/null ||
  fail "the postinst did not byte-compile the modules"
package_smoke /usr/bin/python3
target "$sbin_path" /usr/bin/dpkg -r python3-hbm-runtime
[ ! -e "$sysroot$dist_packages/hbm_runtime" ] && [ ! -e "$sysroot$dist_packages/nanobind_backend" ] ||
  fail "dpkg -r left files behind: $(ls -R "$sysroot$dist_packages/hbm_runtime" "$sysroot$dist_packages/nanobind_backend" 2>&1 | head)"
echo "dpkg -r: nothing left in $dist_packages"

step "summary"
printf '%s\n' "${timings[@]}"
echo "wheel $(basename "$wheel"); openvino run: $([ $openvino_ok = 1 ] && echo yes || echo skipped);" \
  "UCP double: $ucp_ok; bundle (Python $target_minor, offline): yes; .deb: yes; total $((SECONDS - start)) s"
echo "artifacts in $work/dist:" && (cd "$work/dist" && ls -l --time-style=+ -- *.whl *.tar.gz *.cdx.json *.deb SHA256SUMS | sed 's/^/  /')

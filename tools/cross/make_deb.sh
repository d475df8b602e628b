#!/usr/bin/env bash
# Makes python3-hbm-runtime_<version>-<revision>_arm64.deb from an aarch64 hbm_runtime wheel,
# for the system python3 of a Debian/Ubuntu arm64 image (an RDK S100 image is Ubuntu 22.04):
#   /usr/lib/python3/dist-packages/hbm_runtime/                 the wheel, unpacked
#   /usr/lib/python3/dist-packages/hbm_runtime_universal-*.dist-info/
#   /usr/lib/python3/dist-packages/nanobind_backend/            nanobind's backend, one build per
#                                                               CPython 3.10-3.13 (no Debian package)
#   /usr/share/doc/python3-hbm-runtime/                         copyright, README.Debian, changelog
# Depends: python3 (>= 3.10), python3 (<< 3.14), python3-numpy (>= 1:1.22) (from the wheel's
# numpy requirement), and libc6/libstdc++6/libgcc-s1 at the versions the extensions need
# (read with readelf -V; minimum versions from the root's symbols files). A postinst
# byte-compiles the modules and warns when python3 would import another hbm_runtime (the
# vendor's) or has a numpy that is too old; a prerm removes the byte code.
#
# Usage: tools/cross/make_deb.sh WHEEL OUT_DIR
# Env:   HBM_DEB_MAINTAINER="Name <email>"   (default: "$DEBFULLNAME <$DEBEMAIL>", else a
#                                             placeholder, with a warning)
#        HBM_DEB_REVISION=1                   the Debian revision
#        HBM_DEB_NUMPY=apt|pip                apt (default): Depends: python3-numpy (>= 1:1.22);
#                                             pip: no numpy dependency, for images whose numpy
#                                             comes from pip (Ubuntu 22.04's python3-numpy is
#                                             1.21.5, older than hbm_runtime needs)
#        HBM_DEB_PYTHONS="3.10 3.11 3.12 3.13"   CPython versions served (consecutive; the
#                                             project is tested on these)
#        HBM_DEB_NANOBIND_BACKEND             (default nanobind-backend==1.0.0)
#        HBM_DEB_BACKEND_LICENSE=FILE         nanobind's license (default: from the nanobind
#                                             package of $PYTHON, a build requirement)
#        HBM_SYSROOT=DIR                      the arm64 root whose symbols files give the
#                                             library versions (default: none: libc6 from
#                                             GLIBC_x.y, the others unversioned)
#        HBM_CROSS_PREFIX                     binutils prefix (default aarch64-linux-gnu-)
#        PYTHON                               the build machine's Python (default python3;
#                                             needs pip and packaging)
#        SOURCE_DATE_EPOCH                    file times (default: the last commit's time)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fail() { echo "make_deb: $*" >&2; exit 1; }
[ $# -eq 2 ] || fail "usage: $0 WHEEL OUT_DIR"
wheel=$1
[ -f "$wheel" ] || fail "no wheel $wheel"
mkdir -p "$2" && out=$(cd "$2" && pwd)
python=${PYTHON:-python3}
command -v dpkg-deb >/dev/null || fail "dpkg-deb not found (apt-get install dpkg)"
readelf=${HBM_CROSS_PREFIX:-aarch64-linux-gnu-}readelf
command -v "$readelf" >/dev/null || fail "$readelf not found"
backend_pin=${HBM_DEB_NANOBIND_BACKEND:-nanobind-backend==1.0.0}
read -r -a pythons <<<"${HBM_DEB_PYTHONS:-3.10 3.11 3.12 3.13}"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
maintainer=${HBM_DEB_MAINTAINER:-}
if [ -z "$maintainer" ] && [ -n "${DEBFULLNAME:-}" ] && [ -n "${DEBEMAIL:-}" ]; then
  maintainer="$DEBFULLNAME <$DEBEMAIL>"
fi
if [ -z "$maintainer" ]; then
  maintainer="hbm-runtime-universal maintainers <maintainers@hbm-runtime.invalid>"
  echo "make_deb: warning: no maintainer given (HBM_DEB_MAINTAINER): using \"$maintainer\"" >&2
fi
license=${HBM_DEB_BACKEND_LICENSE:-}
if [ -z "$license" ]; then
  license=$("$python" - <<'EOF' || true
from importlib import metadata
dist = metadata.distribution("nanobind")
for f in dist.files or []:
    if f.name.startswith(("LICENSE", "COPYING")):
        print(f.locate())
        break
EOF
)
fi
[ -n "$license" ] && [ -f "$license" ] ||
  fail "nanobind's license file not found: install nanobind for $python or set HBM_DEB_BACKEND_LICENSE"

# nanobind-backend for each Python version (manylinux_2_26/2_28: any image with glibc >= 2.28).
backends=$out/.deb-backends
rm -rf "$backends" && mkdir -p "$backends"
for v in "${pythons[@]}"; do
  "$python" -m pip download --disable-pip-version-check -q --dest "$backends" --only-binary=:all: \
    --no-deps --implementation cp --python-version "$v" --platform manylinux2014_aarch64 \
    --platform manylinux_2_17_aarch64 --platform manylinux_2_26_aarch64 --platform manylinux_2_28_aarch64 \
    "$backend_pin" 2>&1 | grep -v -e '^WARNING: Location' -e '^\[notice\]' || true
done
shopt -s nullglob
backend_args=()
for w in "$backends"/*.whl; do backend_args+=(--backend-wheel "$w"); done
[ ${#backend_args[@]} -eq $((${#pythons[@]} * 2)) ] ||
  fail "expected one $backend_pin wheel per Python (${pythons[*]}), got: $(ls "$backends")"

sysroot_args=()
[ -n "${HBM_SYSROOT:-}" ] && sysroot_args=(--sysroot "$HBM_SYSROOT")
rm -f "$out"/python3-hbm-runtime_*_arm64.deb
"$python" "$here/board_pkg.py" deb --wheel "$wheel" "${backend_args[@]}" --backend-license "$license" \
  --version-file "$root/src/hbm_runtime/_version.py" --out "$out" --maintainer "$maintainer" \
  --revision "${HBM_DEB_REVISION:-1}" --numpy "${HBM_DEB_NUMPY:-apt}" --readelf "$readelf" \
  "${sysroot_args[@]}" >"$out/.deb-control.txt"
deb=$(tail -n 1 "$out/.deb-control.txt")
rm -rf "$backends" "$out/.deb-control.txt"
[ -f "$deb" ] || fail "no .deb was made"
echo "make_deb: $deb ($(du -k "$deb" | cut -f1) KiB)"
dpkg-deb --info "$deb" | sed -n '/^ Package:/,$p'
echo "files:"
dpkg-deb --contents "$deb" | awk '{print "  " $NF}' | grep -v '/$'

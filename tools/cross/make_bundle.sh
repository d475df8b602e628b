#!/usr/bin/env bash
# Makes the offline install bundle of an aarch64 hbm_runtime wheel for a board's Python:
#   OUT_DIR/hbm-runtime-universal-<version>-py<X.Y>-aarch64/     and the same as .tar.gz
#     wheels/            the wheel + the numpy and nanobind-backend wheels it needs there
#     requirements.txt   each wheel pinned with its SHA-256 (pip --require-hashes)
#     install.sh         checks SHA256SUMS, then pip install --no-index from wheels/
#     sbom.cdx.json      CycloneDX 1.6 JSON SBOM (cyclonedx-py, of the installed wheels)
#     SHA256SUMS         every other file of the bundle
#   OUT_DIR/hbm-runtime-universal-<version>-py<X.Y>-aarch64.cdx.json   a copy of the SBOM
# The dependency wheels come from PyPI (pip download for the target's platform and Python);
# the bundle then installs without a network. Checks, on the build machine: the wheels are
# exactly the runtime closure of the wheel for the target (markers evaluated there), and
# pip installs requirements.txt offline for that platform and Python (into a scratch dir).
#
# Usage: tools/cross/make_bundle.sh WHEEL OUT_DIR
# Env:   HBM_BUNDLE_PYTHON=3.10   the target's CPython X.Y (default 3.10: RDK S100 images,
#                                 Ubuntu 22.04). numpy and nanobind-backend wheels are built
#                                 per Python version: a bundle serves that X.Y only
#        HBM_BUNDLE_GLIBC=2.35    the target's glibc (Ubuntu 22.04): manylinux_2_17 up to
#                                 manylinux_2_<this> wheels are accepted
#        HBM_BUNDLE_NUMPY         numpy pin (default numpy==1.26.4 for 3.10-3.12, the last
#                                 numpy 1.x, binary compatible with extensions an image built
#                                 against numpy 1.x; numpy==2.2.6 for 3.13)
#        HBM_BUNDLE_NANOBIND_BACKEND   (default nanobind-backend==1.0.0)
#        HBM_BUNDLE_TOOLS=DIR     venv for cyclonedx-bom and packaging (made if missing;
#                                 default OUT_DIR/../bundle-tools)
#        PYTHON                   the build machine's Python, >= 3.10 (default python3)
#        SOURCE_DATE_EPOCH        timestamps of the SBOM and the archive (default: the last
#                                 commit's time, or now)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fail() { echo "make_bundle: $*" >&2; exit 1; }
[ $# -eq 2 ] || fail "usage: $0 WHEEL OUT_DIR"
wheel=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -f "$wheel" ] || fail "no wheel $1"
mkdir -p "$2" && out=$(cd "$2" && pwd)

# The tools, pinned. cyclonedx-bom provides cyclonedx-py (CycloneDX's Python SBOM tool).
CYCLONEDX_BOM=cyclonedx-bom==7.5.0
PACKAGING=packaging==26.4
pyver=${HBM_BUNDLE_PYTHON:-3.10}
[[ $pyver =~ ^3\.[0-9]+$ ]] || fail "HBM_BUNDLE_PYTHON must be 3.X, got $pyver"
glibc=${HBM_BUNDLE_GLIBC:-2.35}
[[ $glibc =~ ^2\.[0-9]+$ ]] || fail "HBM_BUNDLE_GLIBC must be 2.X, got $glibc"
case $pyver in
  3.10|3.11|3.12) numpy_default=numpy==1.26.4 ;;
  3.13) numpy_default=numpy==2.2.6 ;;
  *) numpy_default= ;;
esac
numpy_pin=${HBM_BUNDLE_NUMPY:-$numpy_default}
[ -n "$numpy_pin" ] || fail "no default numpy pin for Python $pyver: set HBM_BUNDLE_NUMPY=numpy==X.Y.Z"
backend_pin=${HBM_BUNDLE_NANOBIND_BACKEND:-nanobind-backend==1.0.0}
python=${PYTHON:-python3}
tools=${HBM_BUNDLE_TOOLS:-$(dirname "$out")/bundle-tools}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
quiet_pip() { grep -v -e '^WARNING: Location' -e 'WARNING: Running pip as' -e '^\[notice\]' || true; }

# pip's --platform is taken literally: list every tag the target accepts.
platforms=(--platform manylinux2014_aarch64)
for ((minor = 17; minor <= ${glibc#2.}; minor++)); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done

if ! "$tools/bin/python" -c 'import packaging' 2>/dev/null || [ ! -x "$tools/bin/cyclonedx-py" ]; then
  "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install -q --disable-pip-version-check "$CYCLONEDX_BOM" "$PACKAGING" 2>&1 | quiet_pip
fi
[ "$("$tools/bin/cyclonedx-py" --version)" = "${CYCLONEDX_BOM#*==}" ] ||
  "$tools/bin/python" -m pip install -q --disable-pip-version-check "$CYCLONEDX_BOM" "$PACKAGING" 2>&1 | quiet_pip

version=$(unzip -p "$wheel" '*.dist-info/METADATA' | sed -n 's/^Version: //p' | head -n 1)
[ -n "$version" ] || fail "cannot read the version of $wheel"
name=hbm-runtime-universal-$version-py$pyver-aarch64
bundle=$out/$name
rm -rf "$bundle" "$bundle.tar.gz" "$out/$name.cdx.json"
mkdir -p "$bundle/wheels"
cp "$wheel" "$bundle/wheels/"
echo "make_bundle: CPython $pyver aarch64, glibc <= $glibc: $numpy_pin $backend_pin"
"$tools/bin/python" -m pip download --disable-pip-version-check -q --dest "$bundle/wheels" \
  --only-binary=:all: --no-deps --implementation cp --python-version "$pyver" "${platforms[@]}" \
  "$numpy_pin" "$backend_pin" 2>&1 | quiet_pip
# The wheels must be the wheel's runtime closure for the target, each installable there.
"$tools/bin/python" "$here/board_pkg.py" requirements --wheels "$bundle/wheels" --main "$wheel" \
  --python "$pyver" -o "$bundle/requirements.txt"
# pip itself, offline, for the target's platform and Python: every pinned wheel is found,
# matches its hash and installs there (--no-deps: pip evaluates markers for the build
# machine, not for --platform; the closure was checked above, for the target). The files
# land in an empty venv of the build machine, where only their metadata is read: by
# cyclonedx-py, whose SBOM lists each distribution with its version, package URL, declared
# license and dependencies (the wheels' SHA-256 are in requirements.txt and SHA256SUMS).
sbom_env=$out/.bundle-sbom-env
rm -rf "$sbom_env" && "$tools/bin/python" -m venv --without-pip "$sbom_env"
site=$("$sbom_env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$tools/bin/python" -m pip install --disable-pip-version-check -q --no-deps --target "$site" \
  --no-index --find-links "$bundle/wheels" --only-binary=:all: \
  --implementation cp --python-version "$pyver" --platform linux_aarch64 "${platforms[@]}" \
  --require-hashes -r "$bundle/requirements.txt" 2>&1 | quiet_pip
[ "$(ls -d "$site"/*.dist-info | wc -l)" -eq "$(grep -c '^[a-z0-9]' "$bundle/requirements.txt")" ] ||
  fail "pip did not install every wheel of the bundle for CPython $pyver aarch64"
"$tools/bin/python" "$here/board_pkg.py" install-script --template "$here/bundle_install.sh" \
  --python "$pyver" --package "hbm-runtime-universal==$version" -o "$bundle/install.sh"
# The SBOM (CycloneDX 1.6 JSON, validated against the schema by the tool).
"$tools/bin/cyclonedx-py" environment --of JSON --sv 1.6 --output-reproducible \
  --mc-type application -o "$bundle/sbom.cdx.json" "$sbom_env"
rm -rf "$sbom_env"
cp "$bundle/sbom.cdx.json" "$out/$name.cdx.json"
"$tools/bin/python" "$here/board_pkg.py" sha256sums "$bundle"
# A reproducible archive: sorted names, fixed owner and times, gzip without a time stamp.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  -C "$out" -cf - "$name" | gzip -9n >"$bundle.tar.gz"
echo "make_bundle: $bundle.tar.gz ($(du -k "$bundle.tar.gz" | cut -f1) KiB):"
sed 's/^/  /' "$bundle/SHA256SUMS"

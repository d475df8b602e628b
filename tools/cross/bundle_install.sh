#!/bin/sh
# Installs @PACKAGE@ and its dependencies from this bundle, offline (pip --no-index).
# Template: tools/cross/make_bundle.sh fills in the target and copies it as install.sh.
#
# Usage: ./install.sh [PYTHON] [PIP OPTIONS...]
#   PYTHON        the interpreter to install for (default: python3). A virtual
#                 environment's bin/python installs into that environment:
#                   python3 -m venv /opt/hbm-venv && ./install.sh /opt/hbm-venv/bin/python
#   PIP OPTIONS   passed to pip install (e.g. --user, --target DIR, --break-system-packages)
#
# 1. checks every file against SHA256SUMS (and that no wheel is unlisted) before anything else
# 2. checks the interpreter: CPython @PYTHON_VERSION@ on @MACHINE@ (the wheels were picked for it), with pip
# 3. pip install --no-index --find-links wheels/ --require-hashes -r requirements.txt
# 4. imports hbm_runtime with that interpreter (unless --target was given)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=python3
if [ $# -gt 0 ]; then
  case $1 in -*) ;; *) python=$1; shift ;; esac
fi
fail() { echo "install.sh: $*" >&2; exit 1; }

# ---- 1. checksums --------------------------------------------------------------------------------
[ -f "$here/SHA256SUMS" ] || fail "SHA256SUMS is missing from $here"
if command -v sha256sum >/dev/null 2>&1; then
  (cd "$here" && sha256sum --check --quiet --strict SHA256SUMS) ||
    fail "checksum mismatch (see above): the bundle is damaged or was changed; not installing"
else
  command -v "$python" >/dev/null 2>&1 || fail "$python not found"
  (cd "$here" && "$python" - <<'EOF') || fail "checksum mismatch: the bundle is damaged or was changed; not installing"
import hashlib, sys
bad = 0
for line in open("SHA256SUMS", encoding="utf-8"):
    digest, name = line.rstrip("\n").split("  ", 1)
    try:
        ok = hashlib.sha256(open(name, "rb").read()).hexdigest() == digest
    except OSError:
        ok = False
    if not ok:
        print(f"{name}: FAILED", file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
EOF
fi
for whl in "$here"/wheels/*.whl; do
  [ -e "$whl" ] || fail "no wheels in $here/wheels"
  grep -q "  wheels/$(basename "$whl")\$" "$here/SHA256SUMS" || fail "wheels/$(basename "$whl") is not listed in SHA256SUMS"
done
echo "install.sh: checksums OK ($(wc -l <"$here/SHA256SUMS") files)"

# ---- 2. the interpreter --------------------------------------------------------------------------
command -v "$python" >/dev/null 2>&1 || fail "$python not found (give the interpreter as the first argument)"
found=$("$python" -c 'import platform, sys; print("%s %d.%d %s" % (sys.implementation.name, sys.version_info[0], sys.version_info[1], platform.machine()))') ||
  fail "cannot run $python"
[ "$found" = "cpython @PYTHON_VERSION@ @MACHINE@" ] ||
  fail "this bundle is for CPython @PYTHON_VERSION@ on @MACHINE@; $python is $found (make a bundle for it: HBM_BUNDLE_PYTHON=X.Y tools/cross/make_bundle.sh)"
"$python" -m pip --version >/dev/null 2>&1 ||
  fail "$python has no pip (apt install python3-pip, or use a venv: python3 -m venv DIR)"

# ---- 3. install, offline -------------------------------------------------------------------------
"$python" -m pip install --no-index --find-links "$here/wheels" --only-binary :all: \
  --require-hashes -r "$here/requirements.txt" --disable-pip-version-check "$@" ||
  fail "pip install failed"

# ---- 4. check --------------------------------------------------------------------------------------
case " $* " in
  *" --target "*|*" --target="*|*" -t "*) echo "install.sh: installed to the --target directory (not imported)" ;;
  *) "$python" -c 'import hbm_runtime, numpy; print("install.sh: hbm_runtime", hbm_runtime.__version__, "from", hbm_runtime.__file__, "with numpy", numpy.__version__)' ||
       fail "the install finished but 'import hbm_runtime' failed" ;;
esac

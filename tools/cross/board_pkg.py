"""Packaging helpers for board images: the offline bundle's files and the .deb.

Used by tools/cross/make_bundle.sh and tools/cross/make_deb.sh (standard library only,
except ``requirements``, which evaluates environment markers with ``packaging``):

  board_pkg.py requirements --wheels DIR --main WHEEL --python 3.10 [-o FILE]
      requirements.txt for pip's --require-hashes mode: one pinned line with the SHA-256 of
      each wheel in DIR, after checking that the wheels satisfy the main wheel's runtime
      dependencies for the target (aarch64 Linux, CPython X.Y), and that each wheel
      installs on that Python
  board_pkg.py install-script --template FILE --python 3.10 --machine aarch64 --package NAME==V -o FILE
      the bundle's install.sh from tools/cross/bundle_install.sh
  board_pkg.py sha256sums DIR
      DIR/SHA256SUMS (sha256sum's format) over every other file under DIR
  board_pkg.py deb --wheel WHEEL --backend-wheel W [...] --version-file F --out DIR ...
      a .deb for the system Python (/usr/lib/python3/dist-packages), built with dpkg-deb

Errors are reported on stderr as "board_pkg: ..." with exit status 1.
"""

from __future__ import annotations

import argparse
import email.parser
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

DIST_PACKAGES = "usr/lib/python3/dist-packages"
DEB_PACKAGE = "python3-hbm-runtime"
# Runtime dependencies of the wheel and what the .deb does with each one.
#   apt: a Debian package (Depends)   bundled: shipped inside the .deb (no Debian package exists)
DEB_DEPENDENCY_MAP = {"numpy": ("apt", "python3-numpy"), "nanobind-backend": ("bundled", None)}
# Shared libraries the extensions may need -> the Debian package that ships them.
SHLIB_PACKAGES = {"libc.so.6": "libc6", "libm.so.6": "libc6", "libstdc++.so.6": "libstdc++6",
                  "libgcc_s.so.1": "libgcc-s1"}


class PackagingError(Exception):
    pass


# ---- wheels -------------------------------------------------------------------------------------

def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class WheelInfo:
    path: Path
    name: str
    version: str
    tags: List[Tuple[str, str, str]]  # (python, abi, platform), expanded
    metadata: "email.message.Message"
    dist_info: str

    @property
    def requires_dist(self) -> List[str]:
        return list(self.metadata.get_all("Requires-Dist") or [])


def read_wheel(path: Path) -> WheelInfo:
    """Name, version, tags and METADATA of a wheel (from its file name and dist-info)."""
    stem = path.name[:-4] if path.name.endswith(".whl") else ""
    parts = stem.split("-")
    if len(parts) not in (5, 6):
        raise PackagingError(f"{path.name}: not a wheel file name (name-version[-build]-py-abi-platform.whl)")
    py, abi, plat = parts[-3:]
    tags = [(p, a, pl) for p in py.split(".") for a in abi.split(".") for pl in plat.split(".")]
    with zipfile.ZipFile(path) as zf:
        infos = sorted({n.split("/")[0] for n in zf.namelist() if re.match(r"[^/]+\.dist-info/METADATA$", n)})
        if len(infos) != 1:
            raise PackagingError(f"{path.name}: expected one *.dist-info/METADATA, found {infos}")
        meta = email.parser.Parser().parsestr(zf.read(infos[0] + "/METADATA").decode("utf-8"))
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        raise PackagingError(f"{path.name}: METADATA has no Name or Version")
    if normalize(name) != normalize(parts[0]) or version != parts[1]:
        raise PackagingError(f"{path.name}: file name does not match METADATA ({name} {version})")
    return WheelInfo(path, name, version, tags, meta, infos[0])


def target_environment(python: str, machine: str = "aarch64") -> Dict[str, str]:
    """PEP 508 marker variables of CPython X.Y on Linux/<machine>."""
    if not re.fullmatch(r"3\.\d+", python):
        raise PackagingError(f"target Python must be X.Y, got {python!r}")
    return {"python_version": python, "python_full_version": python + ".0", "platform_machine": machine,
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "platform_release": "", "platform_version": "", "implementation_version": python + ".0",
            "extra": ""}


def runtime_requirements(wheel: WheelInfo, env: Dict[str, str]):
    """The wheel's Requires-Dist that apply on the target (markers evaluated there, no extras)."""
    from packaging.requirements import Requirement

    out = []
    for text in wheel.requires_dist:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(env):
            out.append(req)
    return out


def installs_on(wheel: WheelInfo, python: str) -> bool:
    """Whether one of the wheel's tags is for CPython X.Y (cpXY, an abi3 wheel of an older
    CPython 3, or a pure py3 wheel). The platform part is pip's business (--platform)."""
    major, minor = (int(x) for x in python.split("."))
    for py, abi, _plat in wheel.tags:
        m = re.fullmatch(r"cp(\d)(\d+)", py)
        if m and abi == f"cp{major}{minor}" and (int(m[1]), int(m[2])) == (major, minor):
            return True
        if m and abi == "abi3" and int(m[1]) == major and int(m[2]) <= minor:
            return True
        if py in ("py3", f"py{major}{minor}") and abi == "none":
            return True
    return False


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def requirements_text(wheels_dir: Path, main: Path, python: str, machine: str = "aarch64") -> str:
    """Pinned, hashed requirements for every wheel in wheels_dir, after checking that they are
    exactly the main wheel's runtime closure for the target and that each installs there."""
    env = target_environment(python, machine)
    wheels = {}
    for path in sorted(wheels_dir.glob("*.whl")):
        info = read_wheel(path)
        key = normalize(info.name)
        if key in wheels:
            raise PackagingError(f"two wheels of {info.name}: {wheels[key].path.name}, {path.name}")
        if not installs_on(info, python):
            raise PackagingError(f"{path.name} does not install on CPython {python}")
        wheels[key] = info
    main_info = read_wheel(main)
    if normalize(main_info.name) not in wheels:
        raise PackagingError(f"{main.name} is not in {wheels_dir}")
    # The closure of the main wheel's requirements, each satisfied by the wheel of that name.
    needed, todo = {normalize(main_info.name)}, [main_info]
    while todo:
        for req in runtime_requirements(todo.pop(), env):
            key = normalize(req.name)
            have = wheels.get(key)
            if have is None:
                raise PackagingError(f"{req} (needed on CPython {python} {machine}) has no wheel in {wheels_dir}")
            if not req.specifier.contains(have.version, prereleases=True):
                raise PackagingError(f"{have.path.name} does not satisfy {req}")
            if key not in needed:
                needed.add(key)
                todo.append(have)
    extra = sorted(set(wheels) - needed)
    if extra:
        raise PackagingError(f"wheels nothing needs: {', '.join(wheels[k].path.name for k in extra)}")
    lines = []
    for key in sorted(wheels):
        info = wheels[key]
        lines.append(f"{key}=={info.version} \\\n    --hash=sha256:{sha256(info.path)}")
    return "\n".join(lines) + "\n"


def sha256sums(directory: Path, name: str = "SHA256SUMS") -> str:
    """sha256sum-format lines over every file under directory (sorted, relative), but `name`."""
    lines = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel != name:
            lines.append(f"{sha256(path)}  {rel}")
    return "\n".join(lines) + "\n"


def install_script(template: str, python: str, machine: str, package: str) -> str:
    out = template
    for key, value in (("@PYTHON_VERSION@", python), ("@MACHINE@", machine), ("@PACKAGE@", package)):
        if key not in out:
            raise PackagingError(f"the install script template has no {key}")
        out = out.replace(key, value)
    return out


# ---- the .deb -----------------------------------------------------------------------------------

def read_version_file(path: Path) -> str:
    m = re.search(r'^__version__ = "([^"]+)"$', path.read_text(encoding="utf-8"), re.M)
    if not m:
        raise PackagingError(f'{path}: no line __version__ = "..."')
    return m[1]


def debian_version(python_version: str, revision: str) -> str:
    """A Debian version that sorts like the Python one: pre-releases get '~' (0.2.0rc1 <<
    0.2.0), local versions '+'."""
    v = python_version.replace("+", "+local.")
    v = re.sub(r"(?<=\d)\.?(a|b|rc|dev)(?=\d)", r"~\1", v)
    if not re.fullmatch(r"[0-9][A-Za-z0-9.+~]*", v):
        raise PackagingError(f"cannot make a Debian version of {python_version!r}")
    if not re.fullmatch(r"[A-Za-z0-9.+~]+", revision):
        raise PackagingError(f"bad Debian revision {revision!r}")
    return f"{v}-{revision}"


def parse_version_needs(readelf_v: str) -> Dict[str, List[str]]:
    """{library: [version nodes]} from `readelf -V` output (its .gnu.version_r section)."""
    needs: Dict[str, List[str]] = {}
    current = None
    in_r = False
    for line in readelf_v.splitlines():
        if "'.gnu.version_r'" in line:
            in_r = True
            continue
        if in_r and line.startswith("Version") and "'.gnu.version_r'" not in line:
            in_r = False
        if not in_r:
            continue
        m = re.search(r"File: (\S+)", line)
        if m:
            current = m[1]
            needs.setdefault(current, [])
            continue
        m = re.search(r"Name: (\S+)", line)
        if m and current:
            needs[current].append(m[1])
    return needs


def _version_key(node: str) -> Tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", node))


def symbols_minimum(symbols_text: str, nodes: Iterable[str]) -> Optional[str]:
    """The minimum package version that provides every version node, from a Debian symbols
    file (its lines ' NODE@NODE VERSION' name the version that introduced each node)."""
    introduced = {}
    for line in symbols_text.splitlines():
        m = re.match(r"\s+(\S+)@(\S+) (\S+)", line)
        if m and m[1] == m[2]:
            introduced[m[1]] = m[3]
    best = None
    for node in nodes:
        if node not in introduced:
            return None
        v = introduced[node]
        if best is None or _debian_version_lt(best, v):
            best = v
    return best


def _debian_version_lt(a: str, b: str) -> bool:
    if shutil.which("dpkg"):
        return subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
    return _version_key(a) < _version_key(b)


def _symbols_file(sysroot: Optional[Path], package: str) -> Optional[str]:
    """A package's symbols file from a root: its dpkg database, or its .deb in apt's cache."""
    if sysroot is None:
        return None
    for name in (f"{package}:arm64.symbols", f"{package}.symbols"):
        p = sysroot / "var/lib/dpkg/info" / name
        if p.is_file():
            return p.read_text(encoding="utf-8", errors="replace")
    for deb in sorted((sysroot / "var/cache/apt/archives").glob(f"{package}_*_arm64.deb")):
        if shutil.which("dpkg-deb"):
            with tempfile.TemporaryDirectory() as tmp:
                if subprocess.run(["dpkg-deb", "-e", str(deb), tmp]).returncode == 0:
                    p = Path(tmp) / "symbols"
                    if p.is_file():
                        return p.read_text(encoding="utf-8", errors="replace")
    return None


def shlib_depends(needs: Dict[str, List[str]], sysroot: Optional[Path]) -> List[str]:
    """Debian dependencies for the version nodes the extensions need: the minimum version of
    each library's package from the root's symbols files; for glibc without one, the newest
    GLIBC_x.y itself (libc6's version is glibc's); otherwise the package unversioned."""
    by_package: Dict[str, List[str]] = {}
    for lib, nodes in needs.items():
        pkg = SHLIB_PACKAGES.get(lib)
        if pkg is None:
            raise PackagingError(f"an extension needs {lib}, which has no known Debian package")
        by_package.setdefault(pkg, []).extend(nodes)
    out = []
    for pkg in sorted(by_package):
        nodes = sorted(set(by_package[pkg]), key=_version_key)
        text = _symbols_file(sysroot, pkg)
        minimum = symbols_minimum(text, nodes) if text else None
        if minimum is None and pkg == "libc6":
            glibc = [n for n in nodes if n.startswith("GLIBC_2.")]
            minimum = max(glibc, key=_version_key)[len("GLIBC_"):] if glibc else None
        out.append(f"{pkg} (>= {minimum})" if minimum else pkg)
    return out


def numpy_depends(spec: str) -> str:
    """'python3-numpy (>= 1:X), ...' from a pip specifier such as '>=1.22,<3' (Debian's numpy
    has epoch 1)."""
    from packaging.specifiers import SpecifierSet

    from_op = {">=": ">=", ">": ">>", "<": "<<", "<=": "<="}
    parts = []
    for item in sorted(SpecifierSet(spec), key=str):
        if item.operator not in from_op or not re.fullmatch(r"[0-9][0-9.]*", item.version):
            raise PackagingError(f"numpy requirement {item}: only >=, >, <, <= map to a Debian dependency")
        parts.append(f"python3-numpy ({from_op[item.operator]} 1:{item.version})")
    return ", ".join(parts) or "python3-numpy"


def _minimum(spec) -> Optional[str]:
    found = [s.version for s in spec if s.operator in (">=", "==", "~=")]
    return max(found, key=_version_key) if found else None


def deb_control(*, package: str, version: str, maintainer: str, depends: Sequence[str],
                installed_size_kib: int, synopsis: str, description: Sequence[str],
                source: str) -> str:
    body = "\n".join(" " + (line if line.strip() else ".") for line in description)
    fields = [("Package", package), ("Source", source), ("Version", version), ("Architecture", "arm64"),
              ("Maintainer", maintainer), ("Installed-Size", str(installed_size_kib)),
              ("Depends", ", ".join(depends)), ("Section", "python"), ("Priority", "optional")]
    for key, value in fields:
        if "\n" in value or not value:
            raise PackagingError(f"control field {key} is empty or has a newline: {value!r}")
    if len(synopsis) > 80:
        raise PackagingError(f"the synopsis is longer than 80 characters: {synopsis!r}")
    return "".join(f"{k}: {v}\n" for k, v in fields) + f"Description: {synopsis}\n{body}\n"


POSTINST = r"""#!/bin/sh
# postinst of @PACKAGE@: byte-compiles the modules, then warns (never fails) when
# python3 would not use them.
set -e
if [ "$1" = configure ]; then
  if command -v py3compile >/dev/null 2>&1; then
    py3compile -p @PACKAGE@
  else
    python3 -m compileall -q @DIRS@ >/dev/null || true
  fi
  python3 -I - <<'EOF' || true
import importlib.util
import sys
from importlib import metadata

ours = "/@DIST@/hbm_runtime/__init__.py"
spec = importlib.util.find_spec("hbm_runtime")
if spec is not None and spec.origin != ours:
    print(f"@PACKAGE@: warning: python3 imports hbm_runtime from {spec.origin}, not from this "
          f"package ({ours}): another hbm_runtime (the vendor's, installed with pip?) comes first "
          "on sys.path; remove it (pip uninstall hbm-runtime) to use this one", file=sys.stderr)
need = tuple(int(x) for x in "@NUMPY_MIN@".split("."))
try:
    have = metadata.version("numpy")
except metadata.PackageNotFoundError:
    print("@PACKAGE@: warning: numpy is not installed for python3 (it needs numpy >= @NUMPY_MIN@)",
          file=sys.stderr)
else:
    parts = tuple(int(x) for x in have.split(".")[:len(need)] if x.isdigit())
    if parts < need:
        print(f"@PACKAGE@: warning: python3's numpy is {have}; hbm_runtime needs numpy >= @NUMPY_MIN@",
              file=sys.stderr)
EOF
fi
exit 0
"""

PRERM = r"""#!/bin/sh
# prerm of @PACKAGE@: removes the byte-compiled files of its modules.
set -e
if command -v py3clean >/dev/null 2>&1; then
  py3clean -p @PACKAGE@
fi
find @DIRS@ -depth -type d -name __pycache__ -exec rm -rf {} + 2>/dev/null || true
exit 0
"""


def _backend_minors(wheels: Sequence[Path]) -> List[int]:
    out = []
    for w in wheels:
        m = re.search(r"-cp3(\d+)-", w.name)
        if m:
            out.append(int(m[1]))
    return out


def _extract_wheel(wheel: Path, dest: Path, *, keep_dist_info: bool, skip: Sequence[str] = ()) -> List[str]:
    """Unpacks a wheel's importable files into dest (dist-packages). .data/purelib and
    .data/platlib go there too; any other .data part (scripts, headers, data) is refused: the
    .deb installs nothing outside dist-packages. Returns the top-level names written."""
    tops = set()
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.endswith("/"):
                continue
            parts = name.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    raise PackagingError(f"{wheel.name}: {name} would install outside dist-packages")
                parts = parts[2:]
            elif parts[0].endswith(".dist-info"):
                if not keep_dist_info or parts[-1] in ("RECORD", "REQUESTED", "INSTALLER", *skip):
                    continue
            if ".." in parts or name.startswith("/"):
                raise PackagingError(f"{wheel.name}: unsafe path {name}")
            target = dest.joinpath(*parts)
            if target.exists() and target.read_bytes() != zf.read(info):
                raise PackagingError(f"{wheel.name}: {'/'.join(parts)} differs from a file already staged")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            tops.add(parts[0])
    return sorted(tops)


def _installed_size_kib(root: Path) -> int:
    # dpkg-gencontrol's estimate: each file rounded up to 1 KiB, each directory 1 KiB.
    total = 0
    for p in root.rglob("*"):
        if "DEBIAN" in p.relative_to(root).parts:
            continue
        total += 1 if p.is_dir() else max(1, -(-p.stat().st_size // 1024))
    return total


def _normalize_tree(root: Path, epoch: Optional[int]) -> None:
    for p in sorted(root.rglob("*"), reverse=True):
        if p.is_dir():
            p.chmod(0o755)
        elif p.parent.name == "DEBIAN" and p.name in ("postinst", "prerm", "postrm", "preinst"):
            p.chmod(0o755)
        else:
            p.chmod(0o644)
        if epoch is not None:
            os.utime(p, (epoch, epoch), follow_symlinks=False)
    root.chmod(0o755)


def build_deb(*, wheel: Path, backend_wheels: Sequence[Path], version_file: Path, out_dir: Path,
              maintainer: str, revision: str = "1", numpy: str = "apt", sysroot: Optional[Path] = None,
              readelf: Optional[str] = None, backend_license: Optional[Path] = None,
              dpkg_deb: bool = True, epoch: Optional[int] = None) -> Tuple[Path, str]:
    """Stages and (with dpkg_deb) builds the .deb. Returns (path of the .deb or the staging
    directory, control text)."""
    info = read_wheel(wheel)
    version = read_version_file(version_file)
    if version != info.version:
        raise PackagingError(f"{wheel.name} is version {info.version}, {version_file} says {version}")
    if not any(plat.endswith("aarch64") for _py, _abi, plat in info.tags):
        raise PackagingError(f"{wheel.name} is not an aarch64 wheel")
    if numpy not in ("apt", "pip"):
        raise PackagingError(f"numpy must be 'apt' (Depends: python3-numpy) or 'pip' (no dependency), got {numpy!r}")
    # The runtime requirements on arm64 Linux (markers evaluated for the oldest Python the
    # .deb serves; the project's markers name only the machine), each mapped to a Debian
    # dependency or bundled.
    depends: List[str] = []
    numpy_min = None
    bundled_specs = {}
    oldest = "3.%d" % min(_backend_minors(backend_wheels) or [10])
    for req in runtime_requirements(info, target_environment(oldest)):
        key = normalize(req.name)
        if key not in DEB_DEPENDENCY_MAP:
            raise PackagingError(f"{wheel.name} requires {req.name}, which the .deb does not know how to provide "
                                 f"(tools/cross/board_pkg.py DEB_DEPENDENCY_MAP)")
        how, debian = DEB_DEPENDENCY_MAP[key]
        if key == "numpy":
            numpy_min = _minimum(req.specifier) or "1.0"
            if numpy == "apt":
                depends.append(numpy_depends(str(req.specifier)))
        elif how == "bundled":
            bundled_specs[key] = req.specifier
        else:
            depends.append(debian)
    # nanobind-backend: one compiled backend per CPython minor, all in one package directory.
    if "nanobind-backend" in bundled_specs:
        if not backend_wheels:
            raise PackagingError("the wheel needs nanobind-backend: pass its aarch64 wheels (--backend-wheel)")
        if backend_license is None or not backend_license.is_file():
            raise PackagingError("the bundled nanobind-backend needs its license file (--backend-license)")
    minors = []
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "stage"
        dist = stage / DIST_PACKAGES
        dist.mkdir(parents=True)
        tops = _extract_wheel(wheel, dist, keep_dist_info=True)
        backend_version = None
        for bw in backend_wheels:
            binfo = read_wheel(bw)
            if normalize(binfo.name) != "nanobind-backend":
                raise PackagingError(f"{bw.name} is not a nanobind-backend wheel")
            if backend_version not in (None, binfo.version):
                raise PackagingError(f"nanobind-backend wheels of two versions: {backend_version}, {binfo.version}")
            backend_version = binfo.version
            cps = {py for py, _abi, _plat in binfo.tags}
            if len(cps) != 1 or not re.fullmatch(r"cp3\d+", next(iter(cps))):
                raise PackagingError(f"{bw.name}: expected one cp3XY tag")
            minors.append(int(next(iter(cps))[3:]))
            if not any(plat.endswith("aarch64") for _py, _abi, plat in binfo.tags):
                raise PackagingError(f"{bw.name} is not an aarch64 wheel")
            # Each wheel's WHEEL file names its own tag: the merged dist-info keeps none.
            tops += _extract_wheel(bw, dist, keep_dist_info=True, skip=("WHEEL",))
        if backend_wheels:
            spec = bundled_specs.get("nanobind-backend")
            if spec is not None and not spec.contains(backend_version, prereleases=True):
                raise PackagingError(f"nanobind-backend {backend_version} does not satisfy {spec}")
            minors.sort()
            if minors != list(range(minors[0], minors[-1] + 1)) or len(set(minors)) != len(minors):
                raise PackagingError(f"nanobind-backend wheels must cover consecutive Python versions, got {minors}")
            python_range = (f"3.{minors[0]}", f"3.{minors[-1] + 1}")
            requires_python = info.metadata.get("Requires-Python") or ""
            m = re.search(r">=\s*3\.(\d+)", requires_python)
            if m and minors[0] < int(m[1]):
                raise PackagingError(f"a nanobind-backend wheel for 3.{minors[0]}, but the wheel requires Python {requires_python}")
        else:
            python_range = ("3.10", "")
        for d in dist.glob("*.dist-info"):
            (d / "INSTALLER").write_text("dpkg\n")  # pip leaves the files of a dpkg package alone
        # Shared library versions of every extension.
        needs: Dict[str, List[str]] = {}
        sos = sorted(dist.rglob("*.so"))
        if sos:
            if not readelf or not shutil.which(readelf):
                raise PackagingError(f"readelf ({readelf}) is needed to read the extensions' library versions")
            for so in sos:
                text = subprocess.run([readelf, "-V", str(so)], check=True, capture_output=True,
                                      text=True).stdout
                for lib, nodes in parse_version_needs(text).items():
                    needs.setdefault(lib, []).extend(nodes)
        depends = [f"python3 (>= {python_range[0]})"] + (
            [f"python3 (<< {python_range[1]})"] if python_range[1] else []) + depends + shlib_depends(needs, sysroot)
        deb_ver = debian_version(version, revision)
        # Documentation: copyright, README.Debian, changelog.
        doc = stage / "usr/share/doc" / DEB_PACKAGE
        doc.mkdir(parents=True)
        license_name = info.metadata.get("License") or "see the project"
        copyright_text = (
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            f"Upstream-Name: {info.name}\n\n"
            "Files: *\n"
            f"Copyright: the {info.name} authors\n"
            f"License: {license_name}\n")
        if license_name.strip() == "Apache-2.0":
            copyright_text += (" On Debian systems, the complete text of the Apache License, Version 2.0\n"
                               " is in /usr/share/common-licenses/Apache-2.0.\n")
        if backend_wheels:
            lic = backend_license.read_text(encoding="utf-8").rstrip("\n").splitlines()
            copyright_text += ("\nFiles: usr/lib/python3/dist-packages/nanobind_backend/*\n"
                               f"Comment: nanobind-backend {backend_version}, from nanobind's aarch64 wheels\n"
                               "License: BSD-3-Clause\n"
                               + "".join(" " + (line if line.strip() else ".") + "\n" for line in lic))
        (doc / "copyright").write_text(copyright_text, encoding="utf-8")
        (doc / "README.Debian").write_text(README_DEBIAN.replace("@PYTHONS@", _python_list(minors))
                                           .replace("@VERSION@", version), encoding="utf-8")
        changelog = (f"{DEB_PACKAGE} ({deb_ver}) unstable; urgency=medium\n\n"
                     f"  * {info.name} {version}, packaged from {wheel.name}.\n\n"
                     f" -- {maintainer}  {_rfc2822(epoch)}\n")
        with open(doc / "changelog.Debian.gz", "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=epoch or 0) as gz:
                gz.write(changelog.encode("utf-8"))
        # Nothing outside dist-packages but the documentation.
        for p in stage.rglob("*"):
            rel = p.relative_to(stage).as_posix()
            if p.is_file() and not (rel.startswith(DIST_PACKAGES + "/") or rel.startswith(f"usr/share/doc/{DEB_PACKAGE}/")):
                raise PackagingError(f"staged file outside dist-packages and the docs: {rel}")
        dirs = " ".join(f"/{DIST_PACKAGES}/{t}" for t in sorted(set(tops)) if not t.endswith(".dist-info"))
        control_dir = stage / "DEBIAN"
        control_dir.mkdir()
        synopsis = "run RDK S100 .hbm models on the BPU from Python 3 (hbm_runtime API)"
        summary = info.metadata.get("Summary") or ""
        description = textwrap.wrap(summary, 79) + [
            "",
            "The hbm_runtime module (the vendor's HB_HBMRuntime API) for the system",
            "python3: it loads .hbm models through the board's libdnn.so/libhbucp.so",
            "(from the BSP, loaded at first use) and runs .onnx models on the CPU when",
            "OpenVINO is installed.",
            f"Built for CPython {_python_list(minors)} (one abi3 extension; nanobind's",
            "backend is bundled for each of these Python versions).",
            "",
            "The vendor's own hbm_runtime (distribution hbm-runtime) uses the same import",
            "name: see /usr/share/doc/python3-hbm-runtime/README.Debian.",
        ]
        control = deb_control(package=DEB_PACKAGE, version=deb_ver, maintainer=maintainer,
                              depends=depends, installed_size_kib=_installed_size_kib(stage),
                              synopsis=synopsis, description=description, source=normalize(info.name))
        (control_dir / "control").write_text(control, encoding="utf-8")
        subst = {"@PACKAGE@": DEB_PACKAGE, "@DIRS@": dirs, "@DIST@": DIST_PACKAGES,
                 "@NUMPY_MIN@": numpy_min or "1.0"}
        for name, text in (("postinst", POSTINST), ("prerm", PRERM)):
            for k, v in subst.items():
                text = text.replace(k, v)
            (control_dir / name).write_text(text, encoding="utf-8")
        md5 = []
        for p in sorted(stage.rglob("*")):
            rel = p.relative_to(stage).as_posix()
            if p.is_file() and not rel.startswith("DEBIAN/"):
                md5.append(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {rel}")
        (control_dir / "md5sums").write_text("\n".join(md5) + "\n")
        _normalize_tree(stage, epoch)
        out_dir.mkdir(parents=True, exist_ok=True)
        if not dpkg_deb:
            target = out_dir / f"{DEB_PACKAGE}_{deb_ver}_arm64"
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(stage, target, symlinks=True)
            return target, control
        deb = out_dir / f"{DEB_PACKAGE}_{deb_ver}_arm64.deb"
        env = dict(os.environ)
        if epoch is not None:
            env["SOURCE_DATE_EPOCH"] = str(epoch)
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(stage), str(deb)],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        return deb, control


def _python_list(minors: Sequence[int]) -> str:
    return ", ".join(f"3.{m}" for m in sorted(minors)) if minors else ">= 3.10"


def _rfc2822(epoch: Optional[int]) -> str:
    import email.utils

    import time

    return email.utils.formatdate(epoch if epoch is not None else time.time()).replace("-0000", "+0000")


README_DEBIAN = """python3-hbm-runtime for Debian and Ubuntu (arm64)
==================================================

hbm-runtime-universal @VERSION@ for the system python3 (CPython @PYTHONS@), in
/usr/lib/python3/dist-packages:

  python3 -c "import hbm_runtime; print(hbm_runtime.__version__)"
  python3 -m hbm_runtime --help        (the hbm-runtime command of the pip package)

.hbm models run on the BPU through libdnn.so and libhbucp.so, which the board's BSP
provides (the vendor's hobot-dnn package); they are loaded at the first .hbm load, from
the loader's path or from $HBM_UCP_LIB_DIR. .onnx models run on the CPU when OpenVINO is
installed (pip install openvino).

The vendor's own Python package (distribution "hbm-runtime", shipped with hobot-dnn) uses
the same import name, hbm_runtime. This package does not conflict with hobot-dnn (it needs
the BPU libraries hobot-dnn ships), so:
 - if hobot-dnn installs its hbm_runtime under /usr/lib/python3/dist-packages, dpkg refuses
   to install this package over those files;
 - if the vendor's hbm_runtime was installed with pip (/usr/local/lib/python3.X/...), it
   comes first on python3's sys.path and hides this one: the postinst prints a warning
   naming it. Remove it with "pip uninstall hbm-runtime", or install this project in a
   virtual environment instead (the offline bundle's install.sh).

numpy comes from python3-numpy (or, for a package built with numpy from pip, from pip);
hbm_runtime needs numpy >= 1.22. nanobind's small compiled backend (nanobind_backend) is
included, one build per supported Python version.
"""


# ---- command line -------------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="board_pkg.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("requirements")
    r.add_argument("--wheels", type=Path, required=True)
    r.add_argument("--main", type=Path, required=True)
    r.add_argument("--python", required=True)
    r.add_argument("--machine", default="aarch64")
    r.add_argument("-o", "--output", type=Path)
    i = sub.add_parser("install-script")
    i.add_argument("--template", type=Path, required=True)
    i.add_argument("--python", required=True)
    i.add_argument("--machine", default="aarch64")
    i.add_argument("--package", required=True)
    i.add_argument("-o", "--output", type=Path, required=True)
    s = sub.add_parser("sha256sums")
    s.add_argument("directory", type=Path)
    d = sub.add_parser("deb")
    d.add_argument("--wheel", type=Path, required=True)
    d.add_argument("--backend-wheel", type=Path, action="append", default=[])
    d.add_argument("--backend-license", type=Path)
    d.add_argument("--version-file", type=Path, required=True)
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--maintainer", required=True)
    d.add_argument("--revision", default="1")
    d.add_argument("--numpy", default="apt", choices=("apt", "pip"))
    d.add_argument("--sysroot", type=Path)
    d.add_argument("--readelf", default="aarch64-linux-gnu-readelf")
    d.add_argument("--stage-only", action="store_true", help="write the staged tree, no dpkg-deb")
    args = ap.parse_args(argv)
    epoch = int(os.environ["SOURCE_DATE_EPOCH"]) if os.environ.get("SOURCE_DATE_EPOCH") else None
    try:
        if args.cmd == "requirements":
            text = requirements_text(args.wheels, args.main, args.python, args.machine)
            if args.output:
                args.output.write_text(text)
            else:
                sys.stdout.write(text)
        elif args.cmd == "install-script":
            text = install_script(args.template.read_text(), args.python, args.machine, args.package)
            args.output.write_text(text)
            args.output.chmod(0o755)
        elif args.cmd == "sha256sums":
            (args.directory / "SHA256SUMS").write_text(sha256sums(args.directory))
        elif args.cmd == "deb":
            out, control = build_deb(
                wheel=args.wheel, backend_wheels=args.backend_wheel, version_file=args.version_file,
                out_dir=args.out, maintainer=args.maintainer, revision=args.revision, numpy=args.numpy,
                sysroot=args.sysroot, readelf=args.readelf, backend_license=args.backend_license,
                dpkg_deb=not args.stage_only, epoch=epoch)
            sys.stdout.write(control)
            print(out)
    except (PackagingError, OSError, subprocess.CalledProcessError) as e:
        print(f"board_pkg: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

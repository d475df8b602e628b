"""The board-image packaging (tools/cross/board_pkg.py, bundle_install.sh, release.yml),
checked on the build machine with fake wheels: no qemu, no network.

tools/cross/build_aarch64.sh builds the real artifacts and installs them in an arm64 root
under qemu; these tests cover the logic that decides what goes into them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CROSS = REPO / "tools" / "cross"

pytest.importorskip("packaging")  # board_pkg evaluates markers and specifiers with it


def _load_board_pkg():
    spec = importlib.util.spec_from_file_location("board_pkg", CROSS / "board_pkg.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["board_pkg"] = module
    spec.loader.exec_module(module)
    return module


bp = _load_board_pkg()

MAIN_REQUIRES = [
    "numpy>=1.22",
    "nanobind-backend>=1.0",
    "openvino>=2026.4; platform_machine == 'x86_64' or platform_machine == 'AMD64'",
    "openvino>=2026.4; extra == 'host'",
]


def make_wheel(directory: Path, name: str, version: str, tag: str, *, requires=(), files=None,
               summary: str = "A test package", extra_meta: str = "") -> Path:
    dist = name.replace("-", "_")
    path = directory / f"{dist}-{version}-{tag}.whl"
    meta = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {summary}\n"
            "License: Apache-2.0\nRequires-Python: >=3.10\n" + extra_meta
            + "".join(f"Requires-Dist: {r}\n" for r in requires))
    with zipfile.ZipFile(path, "w") as zf:
        for arc, data in (files or {f"{dist}/__init__.py": f"VALUE = {version!r}\n"}).items():
            zf.writestr(arc, data)
        zf.writestr(f"{dist}-{version}.dist-info/METADATA", meta)
        zf.writestr(f"{dist}-{version}.dist-info/WHEEL", f"Wheel-Version: 1.0\nTag: {tag}\n")
        zf.writestr(f"{dist}-{version}.dist-info/RECORD", "")
    return path


def main_wheel(directory: Path, version: str = "0.1.0", requires=MAIN_REQUIRES, files=None) -> Path:
    files = files or {"hbm_runtime/__init__.py": "__version__ = 'x'\n", "hbm_runtime/py.typed": ""}
    return make_wheel(directory, "hbm-runtime-universal", version, "cp310-abi3-linux_aarch64",
                      requires=requires, files=files)


def backend_wheel(directory: Path, minor: int, version: str = "1.0.0") -> Path:
    # The real wheels hold _nb_backend_v1.cpython-3XY-aarch64-linux-gnu.so; a text file stands
    # in for it here (an .so would need the cross readelf).
    files = {"nanobind_backend/__init__.py": "def fill(*a):\n    pass\n",
             f"nanobind_backend/_nb_backend_v1.cpython-3{minor}-aarch64-linux-gnu.txt": f"3.{minor}\n"}
    return make_wheel(directory, "nanobind-backend", version,
                      f"cp3{minor}-cp3{minor}-manylinux_2_26_aarch64.manylinux_2_28_aarch64", files=files)


# ---- the bundle's requirements.txt --------------------------------------------------------------

def test_requirements_pins_the_runtime_closure_with_hashes(tmp_path):
    main = main_wheel(tmp_path)
    numpy = make_wheel(tmp_path, "numpy", "1.26.4", "cp310-cp310-manylinux_2_17_aarch64.manylinux2014_aarch64")
    backend = backend_wheel(tmp_path, 10)
    text = bp.requirements_text(tmp_path, main, "3.10")
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]
    expect = {}
    for wheel, name, version in ((main, "hbm-runtime-universal", "0.1.0"), (numpy, "numpy", "1.26.4"),
                                 (backend, "nanobind-backend", "1.0.0")):
        expect[name] = f"{name}=={version} --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"
    assert sorted(re.sub(r"\s+", " ", line) for line in lines) == sorted(expect.values())
    # openvino is required on x86_64 only (and by the [host] extra): not in an aarch64 bundle.
    assert "openvino" not in text


@pytest.mark.parametrize("case, message", [
    ("missing", "numpy>=1.22 (needed on CPython 3.10 aarch64) has no wheel"),
    ("too old", "does not satisfy numpy>=1.22"),
    ("other python", "does not install on CPython 3.10"),
    ("extra wheel", "wheels nothing needs: six-1.0-py3-none-any.whl"),
])
def test_requirements_refuses_a_wrong_wheel_set(tmp_path, case, message):
    main = main_wheel(tmp_path)
    backend_wheel(tmp_path, 10)
    if case != "missing":
        version = "1.21.6" if case == "too old" else "1.26.4"
        py = "cp311" if case == "other python" else "cp310"
        make_wheel(tmp_path, "numpy", version, f"{py}-{py}-manylinux_2_17_aarch64")
    if case == "extra wheel":
        make_wheel(tmp_path, "six", "1.0", "py3-none-any")
    with pytest.raises(bp.PackagingError, match=re.escape(message)):
        bp.requirements_text(tmp_path, main, "3.10")


def test_markers_are_evaluated_for_the_target():
    info = bp.WheelInfo(Path("x.whl"), "hbm-runtime-universal", "0.1.0", [], _meta(MAIN_REQUIRES), "")
    arm = [str(r) for r in bp.runtime_requirements(info, bp.target_environment("3.10", "aarch64"))]
    x86 = [str(r) for r in bp.runtime_requirements(info, bp.target_environment("3.12", "x86_64"))]
    assert arm == ["numpy>=1.22", "nanobind-backend>=1.0"]
    assert [r.split(";")[0] for r in x86] == ["numpy>=1.22", "nanobind-backend>=1.0", "openvino>=2026.4"]


def _meta(requires):
    import email.parser

    return email.parser.Parser().parsestr("".join(f"Requires-Dist: {r}\n" for r in requires))


# ---- install.sh ----------------------------------------------------------------------------------

def _fake_bundle(tmp_path: Path, python_version: str) -> Path:
    bundle = tmp_path / "bundle"
    (bundle / "wheels").mkdir(parents=True)
    wheel = make_wheel(bundle / "wheels", "hbm-fake-bundle-probe", "1.0", "py3-none-any",
                       files={"hbm_fake_bundle_probe.py": "OK = True\n"})
    (bundle / "requirements.txt").write_text(bp.requirements_text(bundle / "wheels", wheel, python_version,
                                                                  platform.machine()))
    template = (CROSS / "bundle_install.sh").read_text()
    script = bp.install_script(template, python_version, platform.machine(), "hbm-fake-bundle-probe==1.0")
    (bundle / "install.sh").write_text(script)
    (bundle / "SHA256SUMS").write_text(bp.sha256sums(bundle))
    return bundle


def _run_install(bundle: Path, *args: str) -> subprocess.CompletedProcess:
    # No pip configuration of this machine: the bundle alone must be enough.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return subprocess.run(["sh", str(bundle / "install.sh"), sys.executable, *args], env=env,
                          capture_output=True, text=True, timeout=300)


needs_sh = pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX sh")


@needs_sh
def test_install_script_checks_the_sums_before_installing(tmp_path):
    pytest.importorskip("pip")
    host = "%d.%d" % sys.version_info[:2]
    bundle = _fake_bundle(tmp_path, host)
    wheel = next((bundle / "wheels").glob("*.whl"))
    original = wheel.read_bytes()
    wheel.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    target = tmp_path / "target"
    r = _run_install(bundle, "--target", str(target))
    assert r.returncode != 0
    assert "checksum mismatch" in r.stderr
    assert not target.exists(), "pip ran although a checksum did not match"

    wheel.write_bytes(original)
    (bundle / "wheels" / "unlisted-1.0-py3-none-any.whl").write_bytes(b"x")
    r = _run_install(bundle, "--target", str(target))
    assert r.returncode != 0 and "is not listed in SHA256SUMS" in r.stderr
    assert not target.exists()

    (bundle / "wheels" / "unlisted-1.0-py3-none-any.whl").unlink()
    r = _run_install(bundle, "--target", str(target))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "checksums OK" in r.stdout
    assert (target / "hbm_fake_bundle_probe.py").read_text() == "OK = True\n"


@needs_sh
def test_install_script_refuses_another_python(tmp_path):
    bundle = _fake_bundle(tmp_path, "3.99")
    r = _run_install(bundle, "--target", str(tmp_path / "target"))
    assert r.returncode != 0
    assert f"this bundle is for CPython 3.99 on {platform.machine()}" in r.stderr
    assert "checksums OK" in r.stdout  # checked first
    assert not (tmp_path / "target").exists()


# ---- the .deb --------------------------------------------------------------------------------------

def test_debian_version_sorts_like_the_python_version():
    assert bp.debian_version("0.1.0", "1") == "0.1.0-1"
    assert bp.debian_version("1.2.0rc1", "2") == "1.2.0~rc1-2"
    assert bp.debian_version("1.2.0.dev3", "1") == "1.2.0~dev3-1"
    if shutil.which("dpkg"):
        def lt(a, b):
            return subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
        assert lt(bp.debian_version("1.2.0rc1", "1"), bp.debian_version("1.2.0", "1"))
        assert lt(bp.debian_version("1.2.0", "1"), bp.debian_version("1.2.0.post1", "1"))


READELF_V = """
Version symbols section '.gnu.version' contains 40 entries:
 Addr: 0x0000000000001000  Offset: 0x00001000  Link: 3 (.dynsym)
  000:   0 (*local*)       2 (GLIBC_2.17)

Version needs section '.gnu.version_r' contains 3 entries:
 Addr: 0x00000000000030e0  Offset: 0x000030e0  Link: 4 (.dynstr)
  000000: Version: 1  File: libgcc_s.so.1  Cnt: 1
  0x0010:   Name: GCC_3.0  Flags: none  Version: 10
  0x0020: Version: 1  File: libstdc++.so.6  Cnt: 2
  0x0030:   Name: GLIBCXX_3.4.30  Flags: none  Version: 9
  0x0040:   Name: CXXABI_1.3.9  Flags: none  Version: 8
  0x00a0: Version: 1  File: libc.so.6  Cnt: 2
  0x00b0:   Name: GLIBC_2.17  Flags: none  Version: 2
  0x00c0:   Name: GLIBC_2.34  Flags: none  Version: 3
"""


def test_library_versions_come_from_the_roots_symbols_files(tmp_path):
    needs = bp.parse_version_needs(READELF_V)
    assert needs == {"libgcc_s.so.1": ["GCC_3.0"], "libstdc++.so.6": ["GLIBCXX_3.4.30", "CXXABI_1.3.9"],
                     "libc.so.6": ["GLIBC_2.17", "GLIBC_2.34"]}
    # Without a root: libc6 from the newest GLIBC_x.y, the others unversioned.
    assert bp.shlib_depends(needs, None) == ["libc6 (>= 2.34)", "libgcc-s1", "libstdc++6"]
    info = tmp_path / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    (info / "libstdc++6:arm64.symbols").write_text(
        "libstdc++.so.6 libstdc++6 #MINVER#\n CXXABI_1.3.9@CXXABI_1.3.9 5\n GLIBCXX_3.4.29@GLIBCXX_3.4.29 11\n"
        " GLIBCXX_3.4.30@GLIBCXX_3.4.30 12\n _ZNSt6chrono3_V212system_clock3nowEv@GLIBCXX_3.4.19 4.8\n")
    (info / "libgcc-s1:arm64.symbols").write_text("libgcc_s.so.1 libgcc-s1 #MINVER#\n GCC_3.0@GCC_3.0 3.0\n")
    assert bp.shlib_depends(needs, tmp_path) == ["libc6 (>= 2.34)", "libgcc-s1 (>= 3.0)", "libstdc++6 (>= 12)"]
    with pytest.raises(bp.PackagingError, match="libfoo.so.1"):
        bp.shlib_depends({"libfoo.so.1": ["FOO_1"]}, None)


needs_dpkg_deb = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")


def _deb_inputs(tmp_path: Path, version: str = "2.3.0rc1", requires=MAIN_REQUIRES, files=None):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = main_wheel(wheels, version, requires=requires, files=files)
    backends = [backend_wheel(wheels, 10), backend_wheel(wheels, 11)]
    version_file = tmp_path / "_version.py"
    version_file.write_text(f'__version__ = "{version}"\n')
    license_file = tmp_path / "LICENSE"
    license_file.write_text("Copyright (c) the backend's authors\n\nRedistribution permitted.\n")
    return dict(wheel=wheel, backend_wheels=backends, version_file=version_file,
                backend_license=license_file, maintainer="Packager <packager@example.org>")


def _fields(deb: Path) -> dict:
    text = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
    out, key = {}, None
    for line in text.splitlines():
        if line.startswith(" ") and key:
            out[key] += "\n" + line
        else:
            key, _, value = line.partition(": ")
            out[key] = value
    return out


@needs_dpkg_deb
def test_deb_control_and_layout(tmp_path):
    deb, _control = bp.build_deb(out_dir=tmp_path / "out", **_deb_inputs(tmp_path))
    assert deb.name == "python3-hbm-runtime_2.3.0~rc1-1_arm64.deb"
    f = _fields(deb)
    assert f["Package"] == "python3-hbm-runtime"
    assert f["Version"] == "2.3.0~rc1-1"
    assert f["Architecture"] == "arm64"
    assert f["Maintainer"] == "Packager <packager@example.org>"
    # Backends for 3.10 and 3.11: exactly those Pythons; numpy from the wheel's numpy>=1.22.
    assert f["Depends"] == "python3 (>= 3.10), python3 (<< 3.12), python3-numpy (>= 1:1.22)"
    assert "openvino" not in f["Depends"]
    assert "Conflicts" not in f  # hobot-dnn ships the BPU libraries this package needs
    assert all(len(line) <= 80 for line in f["Description"].splitlines())
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], check=True, capture_output=True,
                             text=True).stdout.splitlines()
    paths = sorted(line.split()[-1].lstrip(".") for line in listing if not line.split()[-1].endswith("/"))
    dist = "/usr/lib/python3/dist-packages/"
    doc = "/usr/share/doc/python3-hbm-runtime/"
    assert [p for p in paths if not p.startswith((dist, doc))] == []
    assert all(line.split()[1] == "root/root" for line in listing)
    assert sorted(p for p in paths if p.startswith(doc)) == [doc + "README.Debian", doc + "changelog.Debian.gz",
                                                             doc + "copyright"]
    assert dist + "hbm_runtime/__init__.py" in paths
    assert dist + "nanobind_backend/_nb_backend_v1.cpython-310-aarch64-linux-gnu.txt" in paths
    assert dist + "nanobind_backend/_nb_backend_v1.cpython-311-aarch64-linux-gnu.txt" in paths
    # pip must leave dpkg's files alone: no RECORD, INSTALLER says dpkg.
    assert not [p for p in paths if p.endswith("/RECORD")]
    root = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(root)], check=True)
    assert (root / dist.strip("/") / "hbm_runtime_universal-2.3.0rc1.dist-info/INSTALLER").read_text() == "dpkg\n"
    copyright_text = (root / doc.strip("/") / "copyright").read_text()
    assert "License: Apache-2.0" in copyright_text and "Redistribution permitted." in copyright_text
    assert os.access(root / "DEBIAN/postinst", os.X_OK) and os.access(root / "DEBIAN/prerm", os.X_OK)
    postinst = (root / "DEBIAN/postinst").read_text()
    assert "py3compile -p python3-hbm-runtime" in postinst and '"1.22"' in postinst
    if shutil.which("sh"):
        for script in ("postinst", "prerm"):
            subprocess.run(["sh", "-n", str(root / "DEBIAN" / script)], check=True)
    md5 = dict(reversed(line.split("  ", 1)) for line in (root / "DEBIAN/md5sums").read_text().splitlines())
    rel = "usr/lib/python3/dist-packages/hbm_runtime/__init__.py"
    assert md5[rel] == hashlib.md5((root / rel).read_bytes()).hexdigest()


@needs_dpkg_deb
def test_deb_without_the_numpy_dependency(tmp_path):
    deb, _ = bp.build_deb(out_dir=tmp_path / "out", numpy="pip", **_deb_inputs(tmp_path, "0.1.0"))
    assert _fields(deb)["Depends"] == "python3 (>= 3.10), python3 (<< 3.12)"


@pytest.mark.parametrize("case, message", [
    ("unknown dependency", "requires requests, which the .deb does not know how to provide"),
    ("scripts", "would install outside dist-packages"),
    ("version", "says 9.9.9"),
    ("license", "needs its license file"),
])
def test_deb_refuses(tmp_path, case, message):
    requires = MAIN_REQUIRES + (["requests>=2"] if case == "unknown dependency" else [])
    files = ({"hbm_runtime/__init__.py": "", "hbm_runtime_universal-0.1.0.data/scripts/tool": "#!/bin/sh\n"}
             if case == "scripts" else None)
    inputs = _deb_inputs(tmp_path, "0.1.0", requires=requires, files=files)
    if case == "version":
        inputs["version_file"].write_text('__version__ = "9.9.9"\n')
    if case == "license":
        inputs["backend_license"] = None
    with pytest.raises(bp.PackagingError, match=re.escape(message)):
        bp.build_deb(out_dir=tmp_path / "out", dpkg_deb=False, **inputs)


def test_version_file_is_the_projects():
    version = bp.read_version_file(REPO / "src" / "hbm_runtime" / "_version.py")
    import hbm_runtime

    assert version == hbm_runtime.__version__


# ---- scripts and the release workflow ---------------------------------------------------------------

def test_shell_scripts_parse():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    for name in ("build_aarch64.sh", "make_bundle.sh", "make_deb.sh"):
        subprocess.run([bash, "-n", str(CROSS / name)], check=True)
    subprocess.run(["sh", "-n", str(CROSS / "bundle_install.sh")], check=True)


def test_release_workflow():
    yaml = pytest.importorskip("yaml")
    wf_dir = REPO / ".github" / "workflows"
    release = yaml.safe_load((wf_dir / "release.yml").read_text())
    wheels = yaml.safe_load((wf_dir / "wheels.yml").read_text())
    on = release.get("on", release.get(True))  # YAML 1.1 reads the key `on` as True
    assert on["push"]["tags"] == ["v*"] and "workflow_dispatch" in on
    steps = [s for job in release["jobs"].values() for s in job["steps"]]
    runs = "\n".join(s.get("run", "") for s in steps)
    # Every script the workflow runs exists and is executable.
    scripts = set(re.findall(r"\btools/[\w/.-]+\.sh\b", runs))
    assert "tools/cross/build_aarch64.sh" in scripts
    for script in scripts:
        assert os.access(REPO / script, os.X_OK), script
    # The uploaded files are the ones the script writes.
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    for pattern in ("*.whl", "*.tar.gz", "*.cdx.json", "*.deb", "SHA256SUMS"):
        assert f"build/cross/dist/{pattern}" in upload["with"]["path"].split()
    # The same action versions as the wheels workflow.
    def versions(doc):
        return {s["uses"].split("@")[0]: s["uses"].split("@")[1]
                for job in doc["jobs"].values() for s in job["steps"] if "uses" in s}
    ours, theirs = versions(release), versions(wheels)
    shared = set(ours) & set(theirs)
    assert {"actions/checkout", "actions/upload-artifact", "actions/download-artifact"} <= shared
    assert {a: ours[a] for a in shared} == {a: theirs[a] for a in shared}
    # Release assets are published only from a tag push.
    assert release["jobs"]["release"]["if"] == "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"
    assert release["jobs"]["release"]["permissions"] == {"contents": "write"}

"""The wheelhouse's Flink libraries keep only the hosts' platform's native libraries, and stay a valid
wheel: every file's RECORD hash and size hold after the rewrite (pip checks them)."""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import random
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import jinja2
import pytest
import yaml

from experiments.slimwheel import HOST_UNUSED, arch_of, foreign, hosts_only, slim_wheelhouse
from experiments import wheelpack
from experiments.wheelpack import pack_wheelhouse

ROOT = Path(__file__).resolve().parent.parent

# names as they are in Flink 2.3's jars (flink-dist, flink-scala, flink-python)
OURS = {"x86_64": ["librocksdbjni-linux64.so", "libforstjni-linux64-musl.so",
                   "META-INF/native/liborg_apache_flink_shaded_netty4_netty_transport_native_epoll_x86_64.so",
                   "org/xerial/snappy/native/Linux/x86_64/libsnappyjava.so", "META-INF/native/linux64/libjansi.so"],
        "aarch64": ["librocksdbjni-linux-aarch64.so", "org/xerial/snappy/native/Linux/aarch64/libsnappyjava.so",
                    "META-INF/native/liborg_apache_beam_vendor_grpc_v1p60p1_netty_tcnative_linux_aarch_64.so"]}
NEVER = ["librocksdbjni-linux32.so", "librocksdbjni-linux-ppc64le.so", "librocksdbjni-win64.dll",
         "librocksdbjni-osx-arm64.jnilib", "org/xerial/snappy/native/FreeBSD/x86_64/libsnappyjava.so",
         "org/xerial/snappy/native/Linux/android-aarch64/libsnappyjava.so",
         "org/xerial/snappy/native/Mac/x86_64/libsnappyjava.dylib", "META-INF/native/linux32/libjansi.so",
         "META-INF/native/liborg_apache_flink_shaded_netty4_netty_transport_native_epoll_riscv64.so"]
CLASSES = {"org/apache/flink/A.class": b"\xca\xfe\xba\xbe" + bytes(range(256)) * 40, "META-INF/MANIFEST.MF": b"x: y\n"}


def _jar(names) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in CLASSES.items():
            z.writestr(name, data)
        for name in names:
            z.writestr(name, name.encode() * 100)
    return out.getvalue()


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel(path, files: dict[str, bytes]) -> None:
    record = "apache_flink_libraries-2.3.0.dist-info/RECORD"
    rows = io.StringIO()
    w = csv.writer(rows, lineterminator="\n")
    for name, data in files.items():
        w.writerow([name, _hash(data), len(data)])
    w.writerow([record, "", ""])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr(record, rows.getvalue())


def _record_holds(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        files = {i.filename: z.read(i) for i in z.infolist()}
    rows = list(csv.reader(io.StringIO(files["apache_flink_libraries-2.3.0.dist-info/RECORD"].decode())))
    assert {r[0] for r in rows} == set(files)
    for name, digest, size in rows:
        if digest:
            assert (digest, int(size)) == (_hash(files[name]), len(files[name])), name
    return files


@pytest.mark.parametrize("tag, arch", [(None, None), ("manylinux2014_aarch64", "aarch64"),
                                       ("manylinux_2_17_x86_64", "x86_64")])
def test_the_platform_tag_names_the_arch(tag, arch):
    import platform
    assert arch_of(tag) == (arch or {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                                                    platform.machine().lower()))


def test_an_unknown_platform_is_refused_before_anything_is_downloaded(tmp_path):
    from common.errors import EdgeplaceError
    from experiments.cluster import wheelhouse
    with pytest.raises(ValueError, match=r"no native libraries known for platform 'macosx_11_0_ppc' \(known: x86_64"):
        arch_of("macosx_11_0_ppc")
    with pytest.raises(EdgeplaceError, match="--platform: no native libraries known"):
        wheelhouse(tmp_path / "wh", "macosx_11_0_ppc", say=lambda _: None)
    assert not (tmp_path / "wh").exists()


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_only_the_hosts_native_libraries_stay(tmp_path, arch):
    other = "aarch64" if arch == "x86_64" else "x86_64"
    assert not any(foreign(n, arch) for n in OURS[arch])
    assert all(foreign(n, arch) for n in NEVER + OURS[other])
    assert not foreign("org/apache/flink/A.class", arch)
    jar = _jar(OURS[arch] + OURS[other] + NEVER)
    untouched = _jar([])
    wheel = tmp_path / "apache_flink_libraries-2.3.0-py2.py3-none-any.whl"
    _wheel(wheel, {"pyflink/lib/flink-dist-2.3.0.jar": jar, "pyflink/lib/log4j-api.jar": untouched,
                   "pyflink/__init__.py": b"# flink\n"})
    (tmp_path / "apache_flink-2.3.0-cp311-none-any.whl").write_bytes(b"not touched")
    wheel.chmod(0o644)
    before, after = slim_wheelhouse(tmp_path, arch, say=lambda _: None)
    assert wheel.stat().st_mode & 0o777 == 0o644
    assert after < before
    files = _record_holds(wheel)
    with zipfile.ZipFile(io.BytesIO(files["pyflink/lib/flink-dist-2.3.0.jar"])) as z:
        assert sorted(z.namelist()) == sorted([*CLASSES, *OURS[arch]])
        assert all(z.read(n) == d for n, d in CLASSES.items())
    assert files["pyflink/lib/log4j-api.jar"] == untouched and files["pyflink/__init__.py"] == b"# flink\n"
    assert (tmp_path / "apache_flink-2.3.0-cp311-none-any.whl").read_bytes() == b"not touched"
    stamp = wheel.stat().st_mtime_ns
    assert slim_wheelhouse(tmp_path, arch, say=lambda _: None) is None  # once per wheelhouse
    assert wheel.stat().st_mtime_ns == stamp


def test_hosts_only_leaves_out_what_hosts_never_load(tmp_path):
    """The Table planner, SQL client and metric plugins go (their RECORD rows too); the rest is untouched."""
    wheel = tmp_path / "apache_flink_libraries-2.3.0-py2.py3-none-any.whl"
    keep = {"pyflink/lib/flink-dist-2.3.0.jar": _jar([]), "pyflink/opt/flink-python-2.3.0.jar": _jar([]),
            "pyflink/__init__.py": b"# flink\n"}
    drop = {"pyflink/lib/flink-table-planner-loader-2.3.0.jar": _jar([]),
            "pyflink/opt/flink-sql-client-2.3.0.jar": _jar([]),
            "pyflink/plugins/metrics-jmx/flink-metrics-jmx-2.3.0.jar": _jar([])}
    assert all(n.startswith(HOST_UNUSED) for n in drop) and not any(n.startswith(HOST_UNUSED) for n in keep)
    _wheel(wheel, {**keep, **drop})
    before, after = hosts_only(tmp_path, say=lambda _: None)
    assert after < before
    files = _record_holds(wheel)
    assert {n: files[n] for n in keep} == keep and not set(drop) & set(files)
    assert hosts_only(tmp_path, say=lambda _: None) is None  # once per wheelhouse


def _similar_classes(n: int) -> dict[str, bytes]:
    """Class-like files drawn from one vocabulary (as a jar's classes share names and signatures): deflated one
    by one, each one's words are new to it; compressed as one stream, they are not."""
    rng = random.Random(7)
    vocabulary = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz/;()L") for _ in range(12)) for _ in range(400)]
    return {f"org/apache/flink/C{i}.class": b"".join(rng.choice(vocabulary) for _ in range(150)) for i in range(n)}


def _unpack_as_the_role_does(archives: list[Path], root: Path) -> Path:
    """Copy each archive where the role puts it under `root` (its flink_root) and run the role's own unpack
    command (ansible/roles/flink/tasks/wheelhouse.yml) with this Python; returns the unpacked wheelhouse."""
    tasks = yaml.safe_load((ROOT / "ansible/roles/flink/tasks/wheelhouse.yml").read_text())
    argv = next(t for t in tasks if t["name"] == "Unpack the wheelhouse")["ansible.builtin.command"]["argv"]
    (root / "wheelhouse").mkdir()
    env = jinja2.Environment()
    env.filters["basename"] = lambda p: Path(p).name  # Ansible's filter
    for a in archives:
        cmd = [env.from_string(x).render(flink_python=sys.executable, flink_root=str(root),
                                         flink_wheelhouse_part=str(a)) for x in argv]
        assert cmd[-2:] == [str(root / a.name), str(root / "wheelhouse")]
        shutil.copyfile(a, root / a.name)
        subprocess.run(cmd, check=True, timeout=60)
    return root / "wheelhouse"


def test_the_packed_wheelhouse_holds_the_same_files_stored_and_is_smaller(tmp_path, monkeypatch):
    monkeypatch.setattr(wheelpack, "XZ_PRESET", 1)  # xz -9 sets up a 64 MB dictionary: seconds for nothing here
    classes = _similar_classes(300)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("org/apache/flink/Inner.class", b"\xca\xfe" * 500)
    jar = io.BytesIO()
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in classes.items():
            z.writestr(name, data)
        z.writestr("lib/nested.jar", inner.getvalue())
    house = tmp_path / "house"
    house.mkdir()
    lib = house / "apache_flink_libraries-2.3.0-py2.py3-none-any.whl"
    _wheel(lib, {"pyflink/lib/flink-dist-2.3.0.jar": jar.getvalue(), "pyflink/__init__.py": b"# flink\n"})
    other = house / "apache_flink-2.3.0-cp311-none-any.whl"
    _wheel(other, {"pyflink/datastream/__init__.py": b"x = 1\n" * 50})
    originals = {w.name: w.read_bytes() for w in (lib, other)}
    say = []
    archives = pack_wheelhouse(house, say=say.append)
    # Flink's libraries first (a host unpacks them while the rest crosses its link), then the rest
    assert [sorted(tarfile.open(a).getnames()) for a in archives] == [[lib.name], [other.name]]
    assert {(m.uid, m.gid, m.mode) for a in archives for m in tarfile.open(a).getmembers()} == {(0, 0, 0o644)}
    assert all(a.name.endswith(".tar.xz") and a.stat().st_mode & 0o777 == 0o644 for a in archives)
    assert {w.name: w.read_bytes() for w in (lib, other)} == originals  # the wheelhouse itself is unchanged
    assert sum(a.stat().st_size for a in archives) < 0.5 * sum(map(len, originals.values()))
    assert pack_wheelhouse(house, say=say.append) == archives and len([s for s in say if "packing" in s]) == 1

    unpacked = _unpack_as_the_role_does(archives, tmp_path)
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(originals)
    files = _record_holds(unpacked / lib.name)
    with zipfile.ZipFile(unpacked / lib.name) as w:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in w.infolist())
    with zipfile.ZipFile(io.BytesIO(files["pyflink/lib/flink-dist-2.3.0.jar"])) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        assert {n: z.read(n) for n in classes} == classes
        with zipfile.ZipFile(io.BytesIO(z.read("lib/nested.jar"))) as n:
            assert n.infolist()[0].compress_type == zipfile.ZIP_STORED
            assert n.read("org/apache/flink/Inner.class") == b"\xca\xfe" * 500
    assert files["pyflink/__init__.py"] == b"# flink\n"

    # a changed wheelhouse gets a new archive, the old one goes
    _wheel(other, {"pyflink/datastream/__init__.py": b"x = 2\n"})
    again = pack_wheelhouse(house, say=say.append)
    assert not set(again) & set(archives) and sorted(again[0].parent.iterdir()) == sorted(again)


@pytest.mark.parametrize("xz_tool", [True, False], ids=["xz-tool", "python-lzma"])
def test_an_archive_is_the_same_tar_with_the_xz_tool_or_without(tmp_path, monkeypatch, xz_tool):
    """Where the control host has no xz tool, Python's lzma writes the same archive (slower, one core)."""
    monkeypatch.setattr(wheelpack, "XZ_PRESET", 1)
    if not xz_tool:
        monkeypatch.setattr(wheelpack.shutil, "which", lambda name: None)
    elif shutil.which("xz") is None:
        pytest.fail("this machine has no xz tool; scripts/setup.sh installs xz-utils")
    files = {"a.whl": b"\x00\x01" * 4000, "b.whl": b"wheel" * 300}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    out = tmp_path / "out.tar.xz"
    wheelpack._tar_xz(tmp_path, sorted(files), out)
    with tarfile.open(out, "r:xz") as tar:
        assert {m.name: (m.uid, m.mode, tar.extractfile(m).read()) for m in tar.getmembers()} == \
            {n: (0, 0o644, d) for n, d in files.items()}
    assert out.stat().st_size < sum(map(len, files.values())) / 4

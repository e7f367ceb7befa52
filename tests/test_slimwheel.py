"""The wheelhouse's Flink libraries keep only the hosts' platform's native libraries, and stay a valid
wheel: every file's RECORD hash and size hold after the rewrite (pip checks them)."""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile

import pytest

from experiments.slimwheel import arch_of, foreign, slim_wheelhouse

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

"""Flink's jars for one kind of machine. `apache-flink-libraries` carries native libraries (RocksDB, ForSt,
Netty, Snappy, gRPC) for every platform inside its jars: 119 MB of flink-dist's 199 MB. A host loads only
its own, so the wheelhouse that crosses a thin link keeps those and drops the rest (≈ 100 MB less), and leaves
out what a host never loads (`HOST_UNUSED`: 47 MB more)."""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import platform as _platform
import tempfile
import zipfile
from pathlib import Path

NATIVE = (".so", ".dll", ".dylib", ".jnilib")
ARCHES = {"x86_64": ("x86_64", "x86-64", "linux64", "amd64"),  # linux64: RocksDB's and ForSt's name for it
          "aarch64": ("aarch64", "aarch_64", "arm64")}
OTHER_OSES = ("windows", "osx", "macos", "mac/", "freebsd", "sunos", "android", "aix")
LIBRARIES = "apache_flink_libraries-*.whl"
# what a host never loads: it runs a JobManager and TaskManagers, never Flink's client (jobs are compiled and
# submitted from the control host), so neither the Table planner (42 MB) nor the SQL client; nor metric
# reporters edgeplace does not configure
HOST_UNUSED = ("pyflink/lib/flink-table-planner-loader-", "pyflink/opt/flink-sql-client-", "pyflink/plugins/")


def arch_of(wheel_platform: str | None) -> str:
    """The machine a wheelhouse is for: from pip's --platform tag (manylinux2014_aarch64), else this one."""
    tag = (wheel_platform or _platform.machine()).lower()
    for arch, tokens in ARCHES.items():
        if any(t in tag for t in tokens):
            return arch
    raise ValueError(f"no native libraries known for platform {wheel_platform or tag!r} "
                     f"(known: {', '.join(ARCHES)})")


def foreign(name: str, arch: str) -> bool:
    """A native library that a Linux host of `arch` never loads."""
    low = name.lower()
    if not low.endswith(NATIVE):
        return False
    return not low.endswith(".so") or any(o in low for o in OTHER_OSES) or not any(t in low for t in ARCHES[arch])


def slim_jar(data: bytes, arch: str) -> tuple[bytes, int]:
    """The jar without other platforms' native libraries, and how many it dropped (0: `data` unchanged)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    drop = [i for i in src.infolist() if foreign(i.filename, arch)]
    if not drop:
        return data, 0
    out = io.BytesIO()
    skip = {i.filename for i in drop}
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename not in skip:
                dst.writestr(info, src.read(info), compress_type=info.compress_type)
    return out.getvalue(), len(drop)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def slim_wheel(wheel: Path, arch: str) -> tuple[int, int]:
    """Rewrite `wheel` in place with its jars slimmed for `arch`, RECORD updated (pip checks it). Returns
    (bytes before, bytes after)."""
    def slimmed(name: str, data: bytes) -> bytes:
        return slim_jar(data, arch)[0] if name.endswith(".jar") else data
    return rewrite_wheel(wheel, slimmed)


def rewrite_wheel(wheel: Path, change, compression: int | None = None) -> tuple[int, int]:
    """Rewrite `wheel` in place: each file's bytes become `change(name, data)` (None drops the file), RECORD
    follows (hashes and sizes of what changed, no rows for what was dropped); `compression` (a zipfile
    constant) for every entry, else each keeps its own. Unchanged (same bytes, same compression): the file is
    not touched. Returns (bytes before, bytes after)."""
    before = wheel.stat().st_size
    changed: dict[str, bytes | None] = {}
    with zipfile.ZipFile(wheel) as src:
        for info in src.infolist():
            if info.filename.endswith(".dist-info/RECORD"):
                continue
            data = src.read(info)
            new = change(info.filename, data)
            if new is not data and new != data:
                changed[info.filename] = new
        if not changed and all(compression in (None, i.compress_type) for i in src.infolist()):
            return before, before
        fd, tmp = tempfile.mkstemp(dir=wheel.parent, suffix=".part")
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w") as dst:
                for info in src.infolist():
                    if info.filename in changed:
                        data = changed[info.filename]
                        if data is None:
                            continue
                    elif info.filename.endswith(".dist-info/RECORD"):
                        data = _record(src.read(info).decode(), changed).encode()
                    else:
                        data = src.read(info)
                    dst.writestr(info, data, compress_type=info.compress_type if compression is None else compression)
            os.chmod(tmp, wheel.stat().st_mode & 0o777)  # mkstemp's 0600 would hide it from other users
            os.replace(tmp, wheel)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return before, wheel.stat().st_size


def _record(text: str, changed: dict[str, bytes | None]) -> str:
    """RECORD (CSV: path, hash, size) with the changed files' new hashes and sizes, without dropped files."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in csv.reader(io.StringIO(text)):
        if row and row[0] in changed:
            data = changed[row[0]]
            if data is None:
                continue
            row = [row[0], _record_hash(data), str(len(data))]
        writer.writerow(row)
    return out.getvalue()


def hosts_only(d: Path, say=print) -> tuple[int, int] | None:
    """Drop from the wheelhouse's Flink libraries what a host never loads (`HOST_UNUSED`), once; None if there
    was nothing to do."""
    return _once(d, ".hosts-only", f"left out: {', '.join(HOST_UNUSED)}",
                 "leaving out of Flink's libraries what hosts never load (the Table planner, the SQL client, "
                 "metric reporters)",
                 lambda w: rewrite_wheel(w, lambda name, data: None if name.startswith(HOST_UNUSED) else data), say)


def slim_wheelhouse(d: Path, arch: str, say=print) -> tuple[int, int] | None:
    """Slim the wheelhouse's Flink libraries for `arch` once; None if there was nothing to do."""
    return _once(d, f".slim-{arch}", "native libraries of other platforms removed from Flink's jars",
                 f"keeping only the {arch} native libraries in Flink's jars (once per wheelhouse, about a minute)",
                 lambda w: slim_wheel(w, arch), say)


def _once(d: Path, marker: str, done: str, doing: str, rewrite, say) -> tuple[int, int] | None:
    """`rewrite` each of the wheelhouse's Flink libraries, unless the `marker` file says it was done (it is
    written after, saying `done`). Returns (bytes before, bytes after), None if there was nothing to do."""
    wheels = sorted(d.glob(LIBRARIES))
    if (d / marker).exists() or not wheels:
        return None
    say(doing)
    sizes = [rewrite(w) for w in wheels]
    (d / marker).write_text(done + "\n")
    return sum(b for b, _ in sizes), sum(a for _, a in sizes)

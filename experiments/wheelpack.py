"""The wheelhouse as xz archives for hosts behind thin links. Wheels and jars compress each file on its own
(deflate); stored instead, and xz-compressed as one stream, Flink's class files share one dictionary:
flink-dist's 103 MB of deflated classes become 64 MB. A host unpacks the archives with its own Python (tarfile,
lzma: nothing to install) and pip installs the stored wheels as it would the originals."""
from __future__ import annotations

import hashlib
import io
import lzma
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

from experiments.slimwheel import LIBRARIES, rewrite_wheel

PACKED = ".packed"  # inside the wheelhouse: the archives of its wheels, named by their digest
XZ_PRESET = 9  # 64 MB dictionary: 151 MB where 6 (8 MB) made 166 MB of the same wheels; 65 MB to unpack


def stored(data: bytes) -> bytes:
    """A zip (jar) with every entry stored uncompressed, jars inside it too."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            entry = src.read(info)
            dst.writestr(info, stored(entry) if info.filename.endswith(".jar") else entry,
                         compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def store_wheel(wheel: Path) -> None:
    """Rewrite `wheel` with every file stored, its jars stored inside too (RECORD follows)."""
    rewrite_wheel(wheel, lambda name, data: stored(data) if name.endswith(".jar") else data, zipfile.ZIP_STORED)


def digest(wheels: list[Path]) -> str:
    h = hashlib.sha256()
    for w in wheels:
        st = w.stat()
        h.update(f"{w.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:16]


def pack_wheelhouse(d: Path, say=print) -> list[Path]:
    """`d`'s wheels, stored and xz-compressed into two tars: Flink's libraries, then the rest (a host unpacks
    the first while the second crosses its link). Made once per set of wheels and kept in `d/.packed` (older
    archives there are removed). Returns their paths, in the order to copy them."""
    wheels = sorted(d.glob("*.whl"))
    if not wheels:
        raise ValueError(f"no wheels in {d}")
    libraries = sorted(d.glob(LIBRARIES))
    parts = [p for p in (libraries, [w for w in wheels if w not in libraries]) if p]
    stem = f"wheelhouse-{digest(wheels)}-xz{XZ_PRESET}"
    outs = [d / PACKED / f"{stem}-{i + 1}.tar.xz" for i in range(len(parts))]
    if all(o.exists() for o in outs):
        return outs
    outs[0].parent.mkdir(exist_ok=True)
    size = sum(w.stat().st_size for w in wheels)
    say(f"packing the wheelhouse ({size / 1e6:,.0f} MB) into xz archives for thin links (once per wheelhouse; "
        f"a few minutes)")
    with tempfile.TemporaryDirectory(dir=d.parent, prefix=".pack-") as tmp:
        for part, out in zip(parts, outs):
            for w in part:
                shutil.copyfile(w, Path(tmp) / w.name)
                store_wheel(Path(tmp) / w.name)
            tmp_out = out.with_suffix(".part")
            try:
                _tar_xz(Path(tmp), [w.name for w in part], tmp_out)
                tmp_out.replace(out)
            except BaseException:
                tmp_out.unlink(missing_ok=True)
                raise
            out.chmod(0o644)
    for old in outs[0].parent.glob("wheelhouse-*.tar.xz"):
        if old not in outs:
            old.unlink()
    say(f"wheelhouse archives: {sum(o.stat().st_size for o in outs) / 1e6:,.0f} MB (the wheels: {size / 1e6:,.0f} MB)")
    return outs


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Members owned by root, readable by all: a host's root unpacks them, not as whoever packed them here."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o644
    return info


def _tar_xz(src: Path, names: list[str], out: Path) -> None:
    """tar of `names` in `src`, xz-compressed by the xz tool on every core, or by Python's lzma where there is
    no such tool."""
    xz = shutil.which("xz")
    with open(out, "wb") as f:
        proc = subprocess.Popen([xz, f"-{XZ_PRESET}", "-T0", "-c"], stdin=subprocess.PIPE, stdout=f) if xz else None
        sink = proc.stdin if proc else lzma.open(f, "wb", preset=XZ_PRESET)
        try:
            with tarfile.open(fileobj=sink, mode="w|") as tar:
                for n in names:
                    tar.add(src / n, arcname=n, filter=_as_root)
        finally:
            sink.close()  # xz (or the lzma stream) ends at the end of its input, also when adding failed
            rc = proc.wait() if proc else 0
    if rc != 0:
        raise OSError(f"xz failed (exit {rc}) packing the wheelhouse")

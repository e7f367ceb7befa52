"""Where the `apache-flink` package keeps its Flink distribution, and what its shipped config says."""
from __future__ import annotations

import functools
import os
import shutil
import sys
import zipfile
from pathlib import Path

import yaml

from common.errors import EdgeplaceError
from queries.topology import GROUP_HEAP_MB, GROUP_MANAGED_MB


@functools.cache
def flink_home() -> Path:
    """The pyflink package directory, which holds bin/, lib/ and conf/ of Flink 2.3."""
    try:
        import pyflink
    except ImportError as exc:  # pragma: no cover - setup problem
        raise EdgeplaceError("apache-flink is not installed in this Python; run scripts/setup.sh") from exc
    home = Path(pyflink.__file__).parent
    if not (home / "bin" / "taskmanager.sh").exists():
        raise EdgeplaceError(f"{home} has no bin/taskmanager.sh; reinstall apache-flink==2.3.0")
    return home


@functools.cache
def shipped_java_opts() -> str:
    """`env.java.opts.all` of the shipped config (the --add-opens list Java 17 needs)."""
    conf = yaml.safe_load((flink_home() / "conf" / "config.yaml").read_text())
    return conf["env"]["java"]["opts"]["all"]


# `env.java.opts.client`: the `flink` client's JVM lives for one submission, so C1 alone and the serial
# collector suit it (measured on the testbed: 3.02 → 2.67 s per `flink run`, 6 submissions each)
CLIENT_JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def python_executable() -> str:
    """The interpreter that has pyflink (and edgeplace): used by the client and the UDF workers."""
    return sys.executable


def copy_log_configs(conf_dir: Path) -> None:
    """Each Flink process wants the log4j/logback files next to its config.yaml."""
    src = flink_home() / "conf"
    for f in src.iterdir():
        if f.name.startswith(("log4j", "logback")):
            shutil.copy(f, conf_dir / f.name)


def python_lib(target: Path) -> Path:
    """A lib/ with the distribution's jars plus flink-python, as symlinks (a FLINK_LIB_DIR).
    TaskManagers use it: with flink-python (PyFlink's operators and its Apache Beam runtime) on their own
    classpath and its packages resolved parent-first (`PYTHON_PARENT_FIRST`), they load and JIT-compile
    those ~19,000 classes once, not again for every job (measured: 3.6 s of CPU per job on an edge)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    jars = sorted((flink_home() / "lib").glob("*.jar")) + sorted((flink_home() / "opt").glob("flink-python*.jar"))
    for jar in jars:
        (target / jar.name).symlink_to(jar)
    return target


def make_lean_client(conf_dir: Path, lean: bool = True) -> None:
    """Let the `flink` client in `conf_dir` submit Python jobs without shipping flink-python (42.6 MB per job
    to every TaskManager, across the WAN) to clusters whose TaskManagers have it in their lib (`python_lib`).
    The client gets flink-python on its own classpath (lib/) and, as the one flink-python jar that
    `flink run -py` attaches to each job, an empty jar (opt/). `lean=False` undoes it."""
    opt = conf_dir / "opt"
    for d in (conf_dir / "lib", opt):
        if d.exists():
            shutil.rmtree(d)
    if not lean:
        return
    python_lib(conf_dir / "lib")
    opt.mkdir()
    with zipfile.ZipFile(opt / LEAN_JAR, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: edgeplace (classes are in lib/)\n")


def is_lean_client(conf_dir: Path) -> bool:
    return (conf_dir / "opt" / LEAN_JAR).exists()


def client_env(conf_dir: Path) -> dict[str, str]:
    """Environment of the `flink` client for the config in `conf_dir` (lean when `make_lean_client` made it so)."""
    env = {"FLINK_CONF_DIR": str(conf_dir), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if is_lean_client(conf_dir):
        env.update(FLINK_LIB_DIR=str(conf_dir / "lib"), FLINK_OPT_DIR=str(conf_dir / "opt"))
    return env


PYTHON_PARENT_FIRST = "org.apache.beam.;pemja."
LEAN_JAR = "flink-python-empty.jar"  # the name must start with flink-python: `flink run -py` looks for that


def taskmanager_memory_mb(slots: int, at_least: int = 1280) -> int:
    """`taskmanager.memory.process.size` (MB) for a TaskManager whose every slot may hold one of edgeplace's
    slot sharing groups (`queries.topology.GROUP_*`): with Flink's default memory model (metaspace 256 MB,
    JVM overhead 10 % of the process within 192 MB–1 GB, framework heap and off-heap 128 MB each, network 10 %
    and managed memory 40 % of Flink's memory) its task heap and managed memory hold `slots` groups. At the
    1280 MB that fits a few slots, a TaskManager with more slots could not schedule a job with one group per
    slot (measured: 9 groups on a 16-slot TaskManager of 1280 MB stayed unscheduled)."""
    margin = 16  # MB of task heap: Flink rounds its memory sizes
    flink = max(2 * (slots * GROUP_HEAP_MB + margin + 256), slots * GROUP_MANAGED_MB / 0.4)  # heap = 0.5 F - 256
    process = max(flink + 256 + 192, (flink + 256) / 0.9)  # + metaspace + JVM overhead
    return max(at_least, int(-(-process // 1)))

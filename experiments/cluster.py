"""`edgeplace cluster …`: real Pi + server clusters provisioned and driven with the playbooks in ansible/.

ansible-core is a Python dependency of edgeplace; its `ansible-playbook` is run from the same environment."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from common import paths
from common.errors import EdgeplaceError
from common.files import write_atomic
from common.say import Say

ANSIBLE_DIR = Path(__file__).resolve().parents[1] / "ansible"
PLAYBOOKS = {"provision": "site.yml", "start": "cluster-start.yml", "stop": "cluster-stop.yml",
             "wan": "wan.yml", "facts": "facts.yml"}
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


@dataclass
class PlaybookRun:
    """Outcome of one ansible-playbook run: per-host recap counts and the captured output."""

    playbook: str
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    output: str = ""

    @property
    def changed(self) -> int:
        return sum(h["changed"] for h in self.recap.values())


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise EdgeplaceError(f"{name} is missing from {path.parent}; run scripts/setup.sh (ansible-core is a dependency)")
    return str(path)


def _env() -> dict[str, str]:
    # an inventory that no plugin can parse is an error, not an empty inventory with a warning
    return {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_LOCAL_TEMP": str(paths.home() / "ansible-tmp"), "PATH": f"{Path(sys.executable).parent}:"
            + os.environ.get("PATH", "/usr/bin:/bin")}


def inventory_hosts(inventory: str) -> dict[str, list[str]]:
    """Groups of the inventory (`cloud` must have a host: the first runs the JobManager)."""
    data = _inventory(inventory)
    groups = {g: data.get(g, {}).get("hosts", []) for g in ("cloud", "edge")}
    if not groups["cloud"]:
        raise EdgeplaceError(f"inventory {inventory} has no host in group 'cloud' (the JobManager host)")
    return groups


def inventory_hostvars(inventory: str) -> dict[str, dict]:
    """Every host's variables (address, user, key file …) as Ansible resolves them."""
    return _inventory(inventory).get("_meta", {}).get("hostvars", {})


def _inventory(inventory: str) -> dict:
    if not Path(inventory).is_file():
        raise EdgeplaceError(f"inventory {inventory} does not exist")
    st = Path(inventory).stat()
    return _inventory_of(str(Path(inventory).resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _inventory_of(inventory: str, mtime_ns: int, size: int) -> dict:
    """`ansible-inventory --list`, once per version of the file (a run asks several times)."""
    proc = subprocess.run([_tool("ansible-inventory"), "-i", inventory, "--list"], capture_output=True,
                          text=True, env=_env(), timeout=120)
    if proc.returncode != 0:  # the first plugin's reason (`_env`: an unparsed inventory fails)
        reason = next((l.removeprefix("[WARNING]: ") for l in proc.stderr.splitlines()
                       if l.startswith("[WARNING]: Failed to parse")), _last_lines(proc.stderr, 3))
        raise EdgeplaceError(f"inventory {inventory} cannot be read: {reason}")
    return json.loads(proc.stdout)


def run_playbook(action: str, inventory: str, extra: dict | None = None, say: Say = print,
                 forks: int | None = None) -> PlaybookRun:
    """Run the playbook of `action`, streaming its task lines; a failure raises with the failing lines."""
    inventory_hosts(inventory)
    book = PLAYBOOKS[action]
    if action in ("provision", "start", "stop"):
        forget_facts(inventory)  # what runs where, and with what, may change
    cmd = [_tool("ansible-playbook"), "-i", str(Path(inventory).resolve()), str(ANSIBLE_DIR / book)]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    if forks:
        cmd += ["--forks", str(forks)]
    (paths.home() / "ansible-tmp").mkdir(parents=True, exist_ok=True)
    run = PlaybookRun(book)
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
                          stdin=subprocess.DEVNULL, cwd=ANSIBLE_DIR) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            lines.append(line)
            if line.startswith(("TASK [", "PLAY [")) or line.startswith(("fatal:", "failed:", "[WARNING]")):
                say(f"  {_short(line.rstrip(' *'))}")
            m = RECAP.match(line)
            if m:
                run.recap[m.group(1)] = dict(zip(("ok", "changed", "unreachable", "failed"),
                                                 map(int, m.groups()[1:])))
    run.output = "\n".join(lines)
    if proc.returncode != 0:
        bad = [_short(l) for l in lines if l.startswith(("fatal:", "failed:", "ERROR!"))] or lines[-8:]
        raise EdgeplaceError(f"{book} failed (exit {proc.returncode}):\n" + "\n".join(bad[-6:]))
    return run


def project_wheel(say: Say = print) -> Path:
    """A wheel of edgeplace itself (no dependencies), so TaskManagers' Python workers can import the jobs.
    Kept per digest of its sources: a provisioning with unchanged sources builds nothing (pip takes ~8 s)."""
    root = ANSIBLE_DIR.parent
    out = paths.home() / "wheels" / _sources_digest(root)
    wheels = list(out.glob("edgeplace-*.whl"))
    if wheels:
        return wheels[0]
    for old in out.parent.glob("*"):  # wheels of older sources (and, before digests, loose wheels)
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    out.mkdir(parents=True)
    say("building a wheel of edgeplace for the TaskManagers' Python workers")
    # fixed zip timestamps: the same sources give the same wheel, so re-provisioning changes nothing
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(root)],
                          capture_output=True, text=True, timeout=600, env=env)
    wheels = list(out.glob("edgeplace-*.whl"))
    if proc.returncode != 0 or not wheels:
        shutil.rmtree(out, ignore_errors=True)
        raise EdgeplaceError(f"building the edgeplace wheel failed: {_last_lines(proc.stderr, 4)}")
    return wheels[0]


def _sources_digest(root: Path) -> str:
    """What the wheel is made of: pyproject.toml and the packages' Python files (it holds nothing else)."""
    h = hashlib.sha256()
    packages = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    files = [root / "pyproject.toml"] + sorted(f for pattern in packages["include"]
                                               for f in root.glob(f"{pattern.rstrip('*')}/**/*.py"))
    for f in files:
        h.update(f"{f.relative_to(root)}\0".encode() + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def wheelhouse(d: Path, platform: str | None, say: Say = print, python: str | None = None) -> list[Path]:
    """apache-flink (the version edgeplace pins) and its dependencies as wheels in `d`, for offline hosts,
    resolved by `python` (default: this one): its exact version decides which dependencies a host needs
    (e.g. async-timeout below 3.11.3). An existing non-empty `d` is used as it is. Flink's jars keep only
    the hosts' platform's native libraries and what a host loads (`experiments.slimwheel`). Returns the
    archives of the wheels that cross the hosts' links (`experiments.wheelpack`)."""
    from importlib.metadata import version
    from experiments.slimwheel import arch_of
    try:
        arch = arch_of(platform)
    except ValueError as exc:
        raise EdgeplaceError(f"--platform: {exc}") from None
    if d.is_dir() and any(d.glob("apache_flink-*")):
        return _slimmed(d, arch, say)
    d.mkdir(parents=True, exist_ok=True)
    # `pip wheel` rather than `pip download`: sdists (crcmod, dill, …) become wheels here, so the hosts need
    # no build tools and no index
    cmd = [python or sys.executable, "-m", "pip", "wheel", "-q", "-w", str(d),
           f"apache-flink=={version('apache-flink')}"]
    if platform:
        cmd += ["--platform", platform, "--python-version", "3.11", "--only-binary=:all:"]
    say(f"downloading apache-flink and its dependencies into {d}" + (f" for {platform}" if platform else ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise EdgeplaceError(f"building the wheelhouse failed: {_last_lines(proc.stderr, 4)}")
    return _slimmed(d, arch, say)


def _slimmed(d: Path, arch: str, say: Say) -> list[Path]:
    """The wheelhouse's archives for hosts, Flink's jars holding only `arch`'s native libraries and what hosts
    load (each step done once per wheelhouse)."""
    from experiments.slimwheel import hosts_only, slim_wheelhouse
    from experiments.wheelpack import pack_wheelhouse
    for step in (lambda: slim_wheelhouse(d, arch, say), lambda: hosts_only(d, say)):
        sizes = step()
        if sizes:
            say(f"Flink's libraries: {sizes[0] / 1e6:,.0f} MB → {sizes[1] / 1e6:,.0f} MB")
    return pack_wheelhouse(d, say)


def provision(inventory: str, say: Say = print, with_wheel: bool = True, forks: int | None = None,
              wheelhouse_dir: str | None = None, platform: str | None = None,
              wheel_python: str | None = None) -> PlaybookRun:
    inventory_hosts(inventory)  # a bad inventory fails before the wheels are built
    extra: dict = {}
    if with_wheel:
        extra["flink_extra_wheels"] = [str(project_wheel(say))]
    if wheelhouse_dir:
        extra["flink_wheelhouse"] = [str(a) for a in wheelhouse(Path(wheelhouse_dir).resolve(), platform, say,
                                                                 wheel_python)]
    return run_playbook("provision", inventory, extra, say, forks)


def wan(inventory: str, mbit: float | None, delay_ms: float = 0.0, site: str | None = None,
        say: Say = print) -> PlaybookRun:
    if mbit is not None and mbit <= 0:
        raise EdgeplaceError(f"--mbit must be > 0, got {mbit}")
    extra: dict = {"wan_clear": True} if mbit is None else {"wan_rate_mbit": mbit, "wan_delay_ms": delay_ms}
    if site:
        extra["wan_only_site"] = site
    return run_playbook("wan", inventory, extra, say)


def facts(inventory: str, out: str, say: Say = print) -> dict:
    """Gather the cluster file `out` with facts.yml, and keep a copy for job commands (`kept_facts`)."""
    run_playbook("facts", inventory, {"cluster_file": str(Path(out).resolve())}, say)
    data = json.loads(Path(out).read_text())
    cache = facts_cache(inventory)
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cache, json.dumps({**data, "inventory_digest": _inventory_digest(inventory),
                                    "gathered_at": time.time()}, indent=2), "cluster facts")
    return data


def facts_cache(inventory: str) -> Path:
    return paths.home() / "clusters" / (Path(inventory).stem + ".json")


def kept_facts(inventory: str, max_age_s: float) -> dict | None:
    """The facts last gathered from this inventory, if its host variables have not changed since and they
    are less than `max_age_s` old; else None. `cluster start/stop/provision` forget them."""
    try:
        data = json.loads(facts_cache(inventory).read_text())
    except (OSError, ValueError):
        return None
    fresh = isinstance(data, dict) and data.get("inventory_digest") == _inventory_digest(inventory) and \
        0 <= time.time() - float(data.get("gathered_at", -1e18)) < max_age_s
    return data if fresh and isinstance(data.get("nodes"), list) else None


def forget_facts(inventory: str) -> None:
    facts_cache(inventory).unlink(missing_ok=True)


def _inventory_digest(inventory: str) -> str:
    return hashlib.sha256(json.dumps(inventory_hostvars(inventory), sort_keys=True, default=str).encode()).hexdigest()


def _short(line: str, limit: int = 400) -> str:
    """A task failure as `host: message`, with only the end of long tool output (e.g. pip's)."""
    m = re.match(r"^(fatal|failed): \[([^\]]+)\].*?=> (\{.*\})\s*$", line)
    if m:
        try:
            res = json.loads(m.group(3))
            text = (res.get("stderr") or res.get("msg") or "").strip().splitlines()
            line = f"{m.group(1)}: [{m.group(2)}] {' '.join(text[-3:])}"
        except ValueError:
            pass
    return line if len(line) <= limit else line[:limit] + " …"


def _last_lines(text: str, n: int) -> str:
    return " ".join(text.strip().splitlines()[-n:]) or "(no output)"

"""Print the CPU cores this host really gives its processes: its CPUs, capped by the CPU quota of the
cgroup it runs in and of every cgroup above (cgroup v2 cpu.max or v1 cpu.cfs_quota_us / cpu.cfs_period_us).
Where the cgroup files cannot be read (a namespace that remounted /sys, some containers), it measures
instead: one busy process per CPU for 2 s, and the CPU time they and the other processes of its cgroup
got per second of wall time.
Run by facts.yml over SSH, so it sees the quota its TaskManager will run under."""
import os
import time


def _roots():
    # inside `ip netns exec` /sys is remounted without cgroups: PID 1's view of the file system still has them
    return [r for r in ("/sys/fs/cgroup", "/proc/1/root/sys/fs/cgroup") if os.path.isdir(r) and os.listdir(r)]


def _read(path):
    try:
        with open(path) as fh:
            return fh.read().split()
    except OSError:
        return None


def quota():
    limits = []
    for line in open("/proc/self/cgroup"):
        hid, controllers, path = line.rstrip("\n").split(":", 2)
        parts = [p for p in path.split("/") if p]
        for root in _roots():
            v1 = "cpu" in controllers.split(",")
            base = next((os.path.join(root, m) for m in ("cpu,cpuacct", "cpu") if v1 and os.path.isdir(os.path.join(root, m))),
                        root if hid == "0" else None)
            if base is None:
                continue
            found = False
            for i in range(len(parts), -1, -1):
                d = os.path.join(base, *parts[:i])
                if hid == "0":
                    value = _read(os.path.join(d, "cpu.max"))
                    if value and value[0] != "max":
                        limits.append(int(value[0]) / int(value[1]))
                        found = True
                else:
                    q, p = _read(os.path.join(d, "cpu.cfs_quota_us")), _read(os.path.join(d, "cpu.cfs_period_us"))
                    if q and p and int(q[0]) > 0:
                        limits.append(int(q[0]) / int(p[0]))
                        found = True
            if found or os.path.isdir(os.path.join(base, *parts)):
                break
    return min(limits) if limits else None


def _cgroup_peers():
    """CPU seconds so far of the other processes in this process's own cgroup (pid -> seconds): they share its
    quota (on a cloud host the JobManager and the TaskManager run beside the measurement)."""
    with open("/proc/self/cgroup") as fh:
        mine = fh.read()
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cgroup") as fh:
                if fh.read() != mine:
                    continue
            with open(f"/proc/{d}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[int(d)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return out


def burst(cpus, seconds=2.0):
    """(CPU seconds of `cpus` busy processes, CPU seconds the cgroup's other processes used meanwhile, wall
    seconds) over one burst."""
    before, t0 = _cgroup_peers(), os.times()
    start, pids = time.monotonic(), []
    for _ in range(cpus):
        pid = os.fork()
        if pid == 0:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    wall = time.monotonic() - start
    after = _cgroup_peers()
    t1 = os.times()
    own = t1.children_user + t1.children_system - t0.children_user - t0.children_system
    return own, sum(max(0.0, after[p] - t) for p, t in before.items() if p in after and p not in pids), wall


def measured(cpus, seconds=2.0):
    """Cores the cgroup gets while `cpus` busy processes ask for all they can: their CPU time and that of the
    cgroup's other processes, over wall time."""
    own, others, wall = burst(cpus, seconds)
    return (own + others) / wall


def cgroup_visible():
    return bool(_roots())


if __name__ == "__main__":
    cpus = len(os.sched_getaffinity(0))
    q = quota() if cgroup_visible() else measured(cpus)
    print(round(min(cpus, q), 2) if q else cpus)

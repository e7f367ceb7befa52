"""Print the CPU cores this host really gives its processes: its CPUs, capped by the CPU quota of the
cgroup it runs in and of every cgroup above (cgroup v2 cpu.max or v1 cpu.cfs_quota_us / cpu.cfs_period_us).
Run by facts.yml over SSH, so it sees the quota its TaskManager will run under."""
import os


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


cpus = len(os.sched_getaffinity(0))
q = quota()
print(round(min(cpus, q), 3) if q else cpus)

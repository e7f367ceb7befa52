"""CPU per (process, thread name) of every thread in a cgroup v1 cpu group over an interval (procfs)."""
import collections, os, sys, time
cg, dt = sys.argv[1], float(sys.argv[2])
tck = os.sysconf("SC_CLK_TCK")
def kind(tgid):
    try:
        c = open(f"/proc/{tgid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        return "?"
    exe = os.path.basename(c[0].decode())
    return f"{exe}:{tgid}"
def snap():
    out = {}
    for root, dirs, files in os.walk(cg):
        for tid in open(os.path.join(root, "tasks")).read().split():
            try:
                tgid = [l.split()[1] for l in open(f"/proc/{tid}/status") if l.startswith("Tgid:")][0]
                f = open(f"/proc/{tgid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()  # this thread only
                comm = open(f"/proc/{tgid}/task/{tid}/comm").read().strip()
                out[tid] = (kind(tgid), comm, (int(f[11]) + int(f[12])) / tck)
            except (OSError, IndexError):
                pass
    return out
a = snap(); t0 = time.time(); time.sleep(dt); b = snap(); dt = time.time() - t0
g = collections.Counter(); p = collections.Counter()
for tid, (k, comm, t) in b.items():
    d = (t - a.get(tid, (k, comm, 0.0))[2]) / dt
    g[(k, comm)] += d; p[k] += d
print(f"{cg}: {sum(g.values()):.3f} cores over {dt:.0f} s")
for k, c in p.most_common():
    print(f" {k:28s} {c:.3f}")
    for (kk, comm), cc in g.most_common():
        if kk == k and cc > 0.003:
            print(f"    {comm:22s} {cc:.3f}")

"""Every 30 s: the time of a fixed single-thread work (pure Python loop + a memory walk) and the steal ticks
since the last probe; one line per probe. Costs ~0.1 s of CPU per probe."""
import sys, time
def steal():
    f = open("/proc/stat").readline().split()
    return int(f[8]), sum(int(x) for x in f[1:])
def work():
    t = time.perf_counter(); p = time.process_time()
    s = 0
    for i in range(400_000):
        s += i * i % 7
    b = bytearray(32 << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    return time.perf_counter() - t, time.process_time() - p
s0, t0 = steal()
while True:
    wall, cpu = work()
    s1, t1 = steal()
    print(f"{time.time():.0f} {time.strftime('%H:%M:%S')} wall {wall*1000:.1f} ms cpu {cpu*1000:.1f} ms steal {100*(s1-s0)/max(1,t1-t0):.2f} %", flush=True)
    s0, t0 = s1, t1
    time.sleep(30)

"""The sweep's profiles as a table: per operator, layout and source rate, its worker's cores and µs per record."""
import glob, json, os, re
rows = {}
for f in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles", "q*-*-*.json"))):
    q, layout, rate = re.match(r"(q\d+)-(\w+)-(\d+)\.json", os.path.basename(f)).groups()
    d = json.load(open(f))
    for o in d["operators"]:
        w = o.get("workers") or []
        if not w:
            continue
        cores = sum(x[2] for x in w)
        x = o["observed_in_rate"] if o["observed_in_rate"] else o["observed_out_rate"]
        rows.setdefault(o["name"], []).append((layout, int(rate), x, cores))
for name, rs in rows.items():
    print(name)
    for layout, rate, x, cores in sorted(rs):
        print(f"   {layout:5s} src {rate:5d}  in {x:8.1f}/s  {cores:.4f} cores  {cores / x * 1e6 if x else float('nan'):8.1f} us/rec")

"""q5 runs: each operator's true rate and busy share, as `edgeplace profile --json` computed them from the collect."""
import json
import sys

SHOWN = ("Q5 Count per Window", "Bids", "Nexmark edge-1 gen")
for run in sys.argv[1:]:
    ops = {o["name"]: o for o in json.load(open(f"q5/{run}-profile.json"))["operators"]}
    print(f"{run}: " + " | ".join(f"{n}: true rate {ops[n]['true_processing_rate']:.0f}/s, in {ops[n]['observed_in_rate']:.0f}/s, "
                                   f"busy {ops[n]['busy']:.2f}" for n in SHOWN))

"""acceptance-4's cells with its cells predicted to overrun their checkpoints (λ* = 0, `checkpoint:<site>`)
replaced by this folder's measurements of them under the rule of 06781e1; prints the acceptance figures
of both. Usage: python docs/validation/acceptance-4b/combine.py"""
from pathlib import Path

import pandas as pd

from experiments.accuracy import accuracy, summary

HERE = Path(__file__).parent
old = pd.read_parquet(HERE.parent / "acceptance-4" / "cells.parquet")
new = pd.read_parquet(HERE / "cells.parquet")
overrun = new[new["predicted_bottleneck"].astype(str).str.startswith("checkpoint:")]
combined = pd.concat([old[~old["cell"].isin(overrun["cell"])], overrun], ignore_index=True)
assert len(combined) == len(old), "every replaced cell is one of acceptance-4's"
for name, df in (("acceptance-4 as measured", old), (f"with its {len(overrun)} overrun cells measured again", combined)):
    print(f"## {name}")
    print("\n".join(f"- {line}" for line in summary(accuracy(df))))

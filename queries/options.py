"""Options every job accepts (pure argparse; the same parser serves the job and `edgeplace deploy`)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class JobOptions:
    pins: str | None              # operator uid → TaskManager + resource (JSON, written by realisation)
    sites: tuple[str, ...]
    rate: float                   # records/s per source; 0 = unthrottled
    events: int                   # per source; 0 = unbounded
    parallelism: dict[str, int]
    chaining: bool
    checkpoint_ms: int
    out: str | None
    seed: int
    extra: dict[str, str]         # query-specific key=value options
    restore_from_file: str | None = None  # wait for a savepoint path in this file, then restore from it

    def par(self, uid: str, default: int = 1) -> int:
        return self.parallelism.get(uid, default)


class OptionsError(ValueError):
    """A job argument that is wrong (raised instead of argparse's print-and-exit)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise OptionsError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(add_help=True)
    p.add_argument("--pins", help="pins JSON (operator uid → TaskManager and its external resource), written "
                                  "by edgeplace's deploy; operators without a pin are placed by Flink")
    p.add_argument("--sites", default="edge-1", help="comma-separated edge sites, one source each")
    p.add_argument("--rate", type=float, default=1000.0, help="records/s per source, 0 = unthrottled")
    p.add_argument("--events", type=int, default=0, help="records per source, 0 = unbounded")
    p.add_argument("--parallelism", action="append", default=[], metavar="UID=N")
    p.add_argument("--chaining", action="store_true", help="allow operator chaining (off by default)")
    p.add_argument("--checkpoint-ms", type=int, default=5000)
    p.add_argument("--out", help="directory for sink output (JSON lines) and latency files")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="query-specific option")
    p.add_argument("--restore-from-file", metavar="FILE",
                   help="build the job, then wait for FILE to hold a savepoint path and start from it "
                        "(empty: do not start); lets a redeploy build the new job while the old one stops")
    return p


def parse(argv: list[str]) -> JobOptions:
    a = parser().parse_args(argv)

    def kv(items: list[str], what: str) -> dict[str, str]:
        out = {}
        for item in items:
            k, sep, v = item.partition("=")
            if not sep or not k:
                raise OptionsError(f"{what} takes KEY=VALUE, got {item!r}")
            out[k] = v
        return out

    try:
        par = {k: int(v) for k, v in kv(a.parallelism, "--parallelism").items()}
    except ValueError:
        raise OptionsError("--parallelism takes UID=N with N a whole number") from None
    if any(v < 1 for v in par.values()) or not (0 <= a.rate < float("inf")) or a.events < 0:
        raise OptionsError("parallelism must be >= 1, --rate a finite number >= 0 and --events >= 0")
    sites = tuple(s for s in a.sites.split(",") if s)
    return JobOptions(a.pins, sites, a.rate, a.events, par, a.chaining, a.checkpoint_ms, a.out, a.seed,
                      kv(a.opt, "--opt"), a.restore_from_file)

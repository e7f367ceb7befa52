#!/usr/bin/python
"""Ansible module: shape (or unshape) the egress of one interface with tc htb, as edgeplace's testbed does."""
from __future__ import annotations

import json
import os
import platform
import re

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: edgeplace_tc
short_description: Limit an interface's egress with one htb class (plus netem delay where the kernel has it)
description:
  - Root htb qdisc with one class at I(rate_mbit) and a bounded leaf queue (100 ms of the rate, at least 30
    full frames) - the same shaping as edgeplace's local testbed. Without I(rate_mbit) the shaping is removed.
  - A delay needs the netem qdisc; where the kernel lacks it the delay is skipped with a warning.
options:
  dev: {description: Interface to shape., required: true, type: str}
  rate_mbit: {description: Rate in Mbit/s; omit to remove shaping., type: float}
  delay_ms: {description: One-way delay added on this egress (netem)., type: float, default: 0}
author: edgeplace
"""

RETURN = r"""
shaping: {description: What the interface has now, e.g. "htb 8.0 Mbit/s, bfifo 100000 B" or "none"., type: str}
netem: {description: Whether the delay could be applied., type: bool}
"""

UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


def leaf_limit_bytes(rate_mbit: float) -> int:
    """100 ms of the rate, at least 30 full Ethernet frames."""
    return max(30 * 1514, int(rate_mbit * 1e6 / 8 * 0.1))


def rate_bit(text: str) -> float | None:
    m = re.search(r"\brate (\d+(?:\.\d+)?)([KMG]?)bit", text, re.I)
    return float(m.group(1)) * UNITS[m.group(2).lower()] if m else None


def current(module: AnsibleModule, dev: str) -> dict:
    """The root qdisc, the rate of class 1:10 and the leaf under it."""
    rc, out, err = module.run_command(["tc", "-j", "qdisc", "show", "dev", dev])
    if rc != 0:
        module.fail_json(msg=f"tc cannot read {dev}: {err.strip()}")
    qdiscs = json.loads(out or "[]")
    root = next((q for q in qdiscs if q.get("root")), {})
    leaf = next((q for q in qdiscs if q.get("parent") == "1:10"), {})
    _, cls, _ = module.run_command(["tc", "class", "show", "dev", dev, "classid", "1:10"])
    return {"root": root.get("kind"), "rate_bit": rate_bit(cls), "leaf": leaf.get("kind"),
            "leaf_opts": leaf.get("options", {})}


def netem_available() -> bool:
    """netem loaded, built in, or present as a module for the running kernel."""
    if os.path.exists("/sys/module/sch_netem"):
        return True
    mods = f"/lib/modules/{platform.release()}"
    try:
        with open(f"{mods}/modules.builtin") as fh:
            if "sch_netem" in fh.read():
                return True
    except OSError:
        pass
    for _, _, files in os.walk(mods):
        if any(f.startswith("sch_netem.ko") for f in files):
            return True
    return False


def wanted_leaf(rate_mbit: float, delay_ms: float, netem: bool) -> tuple[str, list[str]]:
    limit = leaf_limit_bytes(rate_mbit)
    if delay_ms > 0 and netem:
        packets = max(30, limit // 1514)
        return "netem", ["netem", "delay", f"{delay_ms}ms", "limit", str(packets)]
    return "bfifo", ["bfifo", "limit", str(limit)]


def matches(cur: dict, rate_mbit: float, leaf_kind: str, delay_ms: float) -> bool:
    if cur["root"] != "htb" or cur["rate_bit"] is None or cur["leaf"] != leaf_kind:
        return False
    if abs(cur["rate_bit"] - rate_mbit * 1e6) > 0.01 * rate_mbit * 1e6:
        return False
    if leaf_kind == "bfifo":
        return cur["leaf_opts"].get("limit") == leaf_limit_bytes(rate_mbit)
    return abs(float(cur["leaf_opts"].get("delay", {}).get("delay", -1)) * 1000 - delay_ms) < 0.5


def main() -> None:
    module = AnsibleModule(argument_spec={"dev": {"type": "str", "required": True},
                                          "rate_mbit": {"type": "float"},
                                          "delay_ms": {"type": "float", "default": 0.0}},
                           supports_check_mode=True)
    dev, rate, delay = module.params["dev"], module.params["rate_mbit"], module.params["delay_ms"]
    if rate is not None and rate <= 0:
        module.fail_json(msg=f"rate_mbit must be > 0, got {rate}")
    cur = current(module, dev)
    run = (lambda argv: None) if module.check_mode else (lambda argv: module.run_command(argv, check_rc=True))

    if rate is None:
        changed = cur["root"] == "htb"
        if changed:
            run(["tc", "qdisc", "del", "dev", dev, "root"])
        module.exit_json(changed=changed, shaping="none", netem=False)

    netem = delay > 0 and netem_available()
    if delay > 0 and not netem:
        module.warn(f"this kernel has no netem qdisc: the {delay} ms delay on {dev} is not applied (rate only)")
    kind, leaf = wanted_leaf(rate, delay, netem)
    if matches(cur, rate, kind, delay):
        module.exit_json(changed=False, shaping=_describe(rate, kind, delay), netem=netem)
    if cur["root"] != "htb":
        run(["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "10"])
    kbit = f"{rate * 1000:g}kbit"
    run(["tc", "class", "replace", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", kbit, "ceil", kbit])
    run(["tc", "qdisc", "replace", "dev", dev, "parent", "1:10", "handle", "10:", *leaf])
    module.exit_json(changed=True, shaping=_describe(rate, kind, delay), netem=kind == "netem")


def _describe(rate: float, kind: str, delay: float) -> str:
    leaf = f"netem {delay} ms" if kind == "netem" else f"bfifo {leaf_limit_bytes(rate)} B"
    return f"htb {rate} Mbit/s, {leaf}"


if __name__ == "__main__":
    main()

"""The local testbed an experiment runs on: the one its config asks for, or the one that is up if that has
the config's shape; checked before anything is started or written."""
from __future__ import annotations

from common.errors import EdgeplaceError
from common.say import Say
from experiments import config as cfg
from experiments.testbed import state as st, testbed as tb
from experiments.testbed.spec import TestbedSpec


def spec_of(conf: cfg.ExperimentConfig) -> TestbedSpec:
    """The local testbed a config asks for (validated)."""
    c = conf.cluster
    return TestbedSpec(edge=c.edge, cloud=c.cloud, edge_slots=c.edge_slots, cloud_slots=c.cloud_slots,
                       edge_cpu=c.edge_cpu, wan_mbit=None, rest_port=c.rest_port, rpc_port=c.rpc_port,
                       subnet=c.subnet, site_cpu=c.site_cpu()).validate()


SHAPE = ("edge", "cloud", "edge_slots", "cloud_slots", "edge_cpu", "site_cpu", "rest_port", "rpc_port", "subnet",
         "ssh_hosts")  # what a config decides of a testbed; a running one that differs in any is not its own


def fit(conf: cfg.ExperimentConfig) -> TestbedSpec:
    """The testbed a local experiment needs: valid, with the sites its config names, and of the same shape as
    one already up (nothing is started or written here)."""
    want = spec_of(conf)
    conf.cluster.rates(None, want.edge_sites())
    have = _up()
    if have is not None:
        differ = [f"{k} {getattr(have, k)!r} (the config: {getattr(want, k)!r})" for k in SHAPE
                  if getattr(have, k) != getattr(want, k)]
        if differ:
            raise EdgeplaceError(f"a testbed of another shape is up: {'; '.join(differ)}; take it down "
                                 "(`edgeplace testbed down`) first")
    return want


def ensure(want: TestbedSpec, say: Say) -> bool:
    """Use the running testbed (`fit` found it of the same shape), or start one (and say we will
    take it down)."""
    if _up() is not None:
        say("using the testbed that is already up")
        return False
    tb.up(want, say=say)
    return True


def _up() -> TestbedSpec | None:
    """The spec of the testbed that is up (None: none is)."""
    state = st.load()
    return TestbedSpec.from_dict(state.spec) if state is not None and state.phase == "up" else None

"""Pure parts of the testbed: validation, address plan, Flink config generation."""
import ipaddress
import itertools

import pytest

from common.errors import EdgeplaceError
from experiments.testbed import flinkconf
from experiments.testbed.spec import TestbedSpec, gateway, members, site_links


@pytest.mark.parametrize("kwargs, fragment", [
    ({"edge": -1}, "--edge"),
    ({"cloud": 0}, "--cloud"),
    ({"edge_slots": 0}, "--edge-slots"),
    ({"edge_cpu": 0}, "--edge-cpu"),
    ({"wan_mbit": 0}, "--wan-mbit"),
    ({"wan_mbit": -5}, "--wan-mbit"),
    ({"wan_delay_ms": -1}, "--wan-delay-ms"),
    ({"rest_port": 80}, "--rest-port"),
    ({"rest_port": 7000, "rpc_port": 7000}, "must differ"),
    ({"subnet": "8.8.8.0/24"}, "private"),
    ({"subnet": "192.0.2.0/24"}, "RFC 1918"),
    ({"subnet": "10.0.0.0/16"}, "/24"),
    ({"subnet": "banana"}, "not a network"),
    ({"edge": 2, "site_cpu": {"edge-3": 0.25}}, "--site-cpu names 'edge-3'"),
    ({"edge": 2, "site_cpu": {"edge-2": 0}}, "--site-cpu edge-2 must be between"),
])
def test_bad_values_are_rejected_with_the_option_named(kwargs, fragment):
    with pytest.raises(EdgeplaceError, match=fragment):
        TestbedSpec(**kwargs).validate()


def test_defaults_are_valid():
    assert TestbedSpec().validate() == TestbedSpec()


def test_members_have_unique_ids_resources_and_non_prefix_hosts():
    spec = TestbedSpec(edge=12, cloud=12)
    ms = members(spec)
    assert len({m.id for m in ms}) == len({m.resource for m in ms}) == 24
    for a, b in itertools.permutations([m.host for m in ms], 2):
        assert a not in b, f"host {a} is a substring of {b}: schedulercfg matching would be ambiguous"
    net = ipaddress.ip_network(spec.subnet)
    assert all(ipaddress.ip_address(m.host) in net for m in ms)
    assert ipaddress.ip_address(gateway(spec)) in net
    assert [m.cpu_cores for m in ms if m.is_edge] == [0.5] * 12
    assert [m.cpu_cores for m in ms if not m.is_edge] == [None] * 12


def test_site_links_use_short_unique_interface_names():
    links = site_links(TestbedSpec(edge=49))
    names = [l.host_if for l in links] + [l.ns_if for l in links]
    assert len(set(names)) == 98 and max(map(len, names)) <= 15  # IFNAMSIZ


def test_loopback_fallback_puts_everyone_on_loopback_without_links():
    spec = TestbedSpec(edge=2, isolate=False)
    assert {m.host for m in members(spec)} == {"127.0.0.1"}
    assert site_links(spec) == [] and gateway(spec) == "127.0.0.1"
    assert all(m.netns is None and m.cpu_cores is None for m in members(spec))


def test_taskmanager_config_pins_resource_id_and_external_resource_to_slots():
    spec = TestbedSpec(edge=1, edge_slots=3)
    edge = next(m for m in members(spec) if m.is_edge)
    conf = flinkconf.taskmanager(spec, edge, "--add-opens=x", "/tmp/x")
    assert conf["taskmanager.resource-id"] == "edge-1"
    assert conf["external-resources"] == "edge1"
    assert conf["external-resource.edge1.amount"] == 3 == conf["taskmanager.numberOfTaskSlots"]
    assert conf["taskmanager.host"] == edge.host and conf["jobmanager.rpc.address"] == gateway(spec)
    assert conf["env.java.opts.all"] == "--add-opens=x"
    assert conf["taskmanager.network.memory.buffer-debloat.enabled"] is True


def test_client_config_sets_both_python_executables():
    conf = flinkconf.client(TestbedSpec(rest_port=18000), "opts", "/venv/bin/python")
    assert conf["python.client.executable"] == conf["python.executable"] == "/venv/bin/python"
    assert conf["rest.port"] == 18000


def test_the_flink_client_starts_its_jvm_with_the_client_options(tmp_path):
    """Flink's own scripts read the client's JVM options from the config written for it (a wrong key would
    leave them out silently)."""
    import os
    import subprocess

    from experiments.testbed.launch import write_conf
    from placement.flinkdist import CLIENT_JAVA_OPTS, flink_home
    write_conf(tmp_path, flinkconf.client(TestbedSpec(), "--add-opens=x", "/venv/bin/python"))
    env = {**os.environ, "FLINK_CONF_DIR": str(tmp_path), "FLINK_HOME": str(flink_home()), "_FLINK_HOME_DETERMINED": "1"}
    out = subprocess.run(["bash", "-c", '. "$FLINK_HOME/bin/config.sh" && echo "$FLINK_ENV_JAVA_OPTS_CLI"'],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.stdout.strip().splitlines()[-1] == CLIENT_JAVA_OPTS, out


def test_the_jobmanager_listens_on_loopback_and_the_testbed_bridge_only():
    spec = TestbedSpec(subnet="10.213.9.0/24")
    conf = flinkconf.jobmanager(spec, "opts", "/tmp/x")
    assert conf["jobmanager.bind-host"] == gateway(spec) == "10.213.9.1"
    assert conf["rest.bind-address"] == "127.0.0.1" and conf["web.submit.enable"] is False
    loop = flinkconf.jobmanager(TestbedSpec(isolate=False), "opts", "/tmp/x")
    assert {loop["jobmanager.bind-host"], loop["rest.bind-address"]} == {"127.0.0.1"}


def test_each_edge_site_may_have_its_own_cpu_quota():
    spec = TestbedSpec(edge=2, edge_cpu=0.5, site_cpu={"edge-2": 0.25}).validate()
    assert {m.id: m.cpu_cores for m in members(spec) if m.is_edge} == {"edge-1": 0.5, "edge-2": 0.25}
    assert TestbedSpec.from_dict(spec.to_dict()) == spec


def test_planning_nodes_take_each_sites_quota_and_the_cloud_the_rest():
    from experiments.environments import cluster_nodes
    tms = [{"id": "cloud-1", "site": "cloud", "slots": 8}, {"id": "edge-1", "site": "edge-1", "slots": 3},
           {"id": "edge-2", "site": "edge-2", "slots": 3}]
    nodes = {n.id: n.cores for n in cluster_nodes(tms, 0.5, 2.0, {"edge-2": 0.25})}
    assert nodes == {"cloud-1": 1.25, "edge-1": 0.5, "edge-2": 0.25}

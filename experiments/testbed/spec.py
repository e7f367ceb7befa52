"""What a testbed should look like: validated options and the address plan derived from them."""
from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field

from common.errors import EdgeplaceError
from placement.flinkdist import taskmanager_memory_mb

RFC1918 = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
MAX_PER_SIDE = 49  # TaskManager hosts use last octets 101..149 (cloud) and 151..199 (edge)


@dataclass(frozen=True)
class TestbedSpec:
    """Options of `edgeplace testbed up`; `validate()` rejects anything that cannot work."""

    edge: int = 1
    cloud: int = 1
    edge_slots: int = 2
    cloud_slots: int = 4
    edge_cpu: float = 0.5
    wan_mbit: float | None = 10.0
    wan_delay_ms: float = 0.0
    rest_port: int = 8081
    rpc_port: int = 6123
    subnet: str = "10.213.0.0/24"
    edge_memory_mb: int = 1280   # at least: more where the slots need it (flinkdist.taskmanager_memory_mb)
    cloud_memory_mb: int = 1280
    isolate: bool = True  # namespaces + tc + cgroups; False forces the loopback fallback
    ssh_hosts: bool = False  # edge sites run sshd instead of Flink (hosts for the Ansible path)
    site_cpu: dict[str, float] = field(default_factory=dict)  # edge site → its own CPU quota (else edge_cpu)

    __test__ = False  # not a pytest class

    def validate(self) -> "TestbedSpec":
        def bad(msg: str) -> None:
            raise EdgeplaceError(msg)

        if not 0 <= self.edge <= MAX_PER_SIDE:
            bad(f"--edge must be between 0 and {MAX_PER_SIDE}, got {self.edge}")
        if not 1 <= self.cloud <= MAX_PER_SIDE:
            bad(f"--cloud must be between 1 and {MAX_PER_SIDE} (the cloud hosts the JobManager side), got {self.cloud}")
        for name, slots in (("--edge-slots", self.edge_slots), ("--cloud-slots", self.cloud_slots)):
            if not 1 <= slots <= 64:
                bad(f"{name} must be between 1 and 64, got {slots}")
        if not 0.01 <= self.edge_cpu <= 64:
            bad(f"--edge-cpu must be between 0.01 and 64 cores, got {self.edge_cpu}")
        sites = set(self.edge_sites())
        for site, cores in self.site_cpu.items():
            if site not in sites:
                bad(f"--site-cpu names {site!r}, which is not an edge site of this testbed "
                    f"({', '.join(sorted(sites)) or 'none'})")
            if not (isinstance(cores, (int, float)) and 0.01 <= cores <= 64):
                bad(f"--site-cpu {site} must be between 0.01 and 64 cores, got {cores}")
        if self.wan_mbit is not None and not 0 < self.wan_mbit <= 100_000:
            bad(f"--wan-mbit must be > 0 and <= 100000 Mbit/s, got {self.wan_mbit}")
        if not 0 <= self.wan_delay_ms <= 10_000:
            bad(f"--wan-delay-ms must be between 0 and 10000, got {self.wan_delay_ms}")
        for name, port in (("--rest-port", self.rest_port), ("--rpc-port", self.rpc_port)):
            if not 1024 <= port <= 65535:
                bad(f"{name} must be between 1024 and 65535, got {port}")
        if self.ssh_hosts and (self.edge < 1 or not self.isolate):
            bad("--ssh-hosts needs at least one edge site and isolation (network namespaces)")
        if self.rest_port == self.rpc_port:
            bad("--rest-port and --rpc-port must differ")
        for name, mb in (("edge", self.edge_memory_mb), ("cloud", self.cloud_memory_mb)):
            if mb < 768:
                bad(f"{name} TaskManager memory must be at least 768 MB, got {mb}")
        try:
            net = ipaddress.ip_network(self.subnet)
        except ValueError as exc:
            bad(f"--subnet {self.subnet!r} is not a network: {exc}")
        if net.version != 4 or net.prefixlen != 24 or not any(net.subnet_of(r) for r in RFC1918):
            bad(f"--subnet must be an RFC 1918 private IPv4 /24 (e.g. 10.213.0.0/24), got {self.subnet}")
        return self

    def edge_sites(self) -> list[str]:
        """The edge sites' names: edge-1 … edge-N."""
        return [f"edge-{i}" for i in range(1, self.edge + 1)]

    def cpu_of(self, site: str) -> float:
        """The CPU quota of an edge site's TaskManager, cores."""
        return float(self.site_cpu.get(site, self.edge_cpu))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TestbedSpec":
        return cls(**data)


@dataclass(frozen=True)
class Member:
    """One TaskManager of the testbed."""

    id: str            # taskmanager.resource-id, e.g. edge-1
    site: str          # edge-1 … for edge TaskManagers (one site each), "cloud" otherwise
    host: str          # address the TaskManager advertises (schedulercfg host)
    slots: int
    resource: str      # external resource name, unique per TaskManager (edge1, cloud1)
    netns: str | None  # network namespace, None when it runs in the root namespace
    cpu_cores: float | None  # CPU quota, None = unlimited
    memory_mb: int

    @property
    def is_edge(self) -> bool:
        return self.site != "cloud"


@dataclass(frozen=True)
class SiteLink:
    """The veth pair joining one edge site to the cloud bridge."""

    site: str
    netns: str
    host_if: str   # root-namespace end (egress = downlink towards the edge)
    ns_if: str     # namespace end (egress = uplink towards the cloud)
    ns_addr: str


def bridge_name(spec: TestbedSpec) -> str:
    return f"epbr{_tag(spec)}"


def _tag(spec: TestbedSpec) -> str:
    """Short id derived from the subnet's third octet so two subnets never share interface names."""
    return str(ipaddress.ip_network(spec.subnet).network_address).split(".")[2]


def gateway(spec: TestbedSpec) -> str:
    """Bridge address in the root namespace: JobManager RPC address seen by every TaskManager."""
    if not spec.isolate:
        return "127.0.0.1"
    return str(ipaddress.ip_network(spec.subnet).network_address + 1)


def members(spec: TestbedSpec) -> list[Member]:
    """TaskManagers with their addresses: cloud .101…, edge .151… (no host is a prefix of another)."""
    base = ipaddress.ip_network(spec.subnet).network_address
    out = []
    for i in range(1, spec.cloud + 1):
        out.append(Member(f"cloud-{i}", "cloud", str(base + 100 + i) if spec.isolate else "127.0.0.1",
                          spec.cloud_slots, f"cloud{i}", _netns(spec, i, "cloud") if spec.isolate else None, None,
                          taskmanager_memory_mb(spec.cloud_slots, spec.cloud_memory_mb)))
    for i in range(1, spec.edge + 1):
        out.append(Member(f"edge-{i}", f"edge-{i}", str(base + 150 + i) if spec.isolate else "127.0.0.1",
                          spec.edge_slots, f"edge{i}", _netns(spec, i) if spec.isolate else None,
                          spec.cpu_of(f"edge-{i}") if spec.isolate else None,
                          taskmanager_memory_mb(spec.edge_slots, spec.edge_memory_mb)))
    return out


def _netns(spec: TestbedSpec, i: int, side: str = "edge") -> str:
    return f"ep{_tag(spec)}-{side}-{i}"


def site_links(spec: TestbedSpec) -> list[SiteLink]:
    if not spec.isolate:
        return []
    tag = _tag(spec)
    return [SiteLink(m.site, m.netns, f"ep{tag}e{i}h", f"ep{tag}e{i}n", m.host)
            for i, m in enumerate((m for m in members(spec) if m.is_edge), start=1)]


def cloud_links(spec: TestbedSpec) -> list[SiteLink]:
    """Cloud TaskManagers live in namespaces of their own too, joined to the bridge unshaped: whatever they
    listen on (PyFlink's Beam servers bind every interface) is then reachable only on the testbed subnet."""
    if not spec.isolate:
        return []
    tag = _tag(spec)
    return [SiteLink(m.site, m.netns, f"ep{tag}c{i}h", f"ep{tag}c{i}n", m.host)
            for i, m in enumerate((m for m in members(spec) if not m.is_edge), start=1)]

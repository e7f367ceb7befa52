"""Placement JSON and schedulercfg: round trips and every malformed input rejected clearly."""
import json
from pathlib import Path

import pytest

from common.errors import EdgeplaceError
from placement import schedulercfg
from placement.checks import TaskManagerInfo, check
from placement.model import Placement
from queries import options
from queries.counts import job as counts
from queries.topology import all_tasks

OPS = counts.topology(options.parse(["--sites", "edge-1", "--parallelism", "count=2"]))
TASKS = all_tasks(OPS)
HOSTS = {"edge-1": "10.213.0.151", "cloud-1": "10.213.0.101"}
PLACED = Placement({"src-edge-1": "edge-1", "parse": "edge-1", "count": "cloud-1", "sink": "cloud-1"})
CLUSTER = {"edge-1": TaskManagerInfo("edge-1", HOSTS["edge-1"], 2, {"edge1": 2.0}),
           "cloud-1": TaskManagerInfo("cloud-1", HOSTS["cloud-1"], 4, {"cloud1": 4.0})}


def test_placement_json_round_trip(tmp_path):
    p = Placement({"a": "edge-1"}, {"edge-1": "e1"}, {"policy": "optimal"})
    p.write(tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["version"] == 1
    assert Placement.read(tmp_path / "p.json") == p
    assert p.resource_of("edge-1") == "e1" and p.resource_of("cloud-2") == "cloud2"


@pytest.mark.parametrize("text, fragment", [
    ("{", "not valid JSON"),
    ('{"version": 2, "assignments": {"a": "b"}}', "unsupported placement version"),
    ('{"version": 1}', "'assignments'"),
    ('{"version": 1, "assignments": {"a": 3}}', "'assignments'"),
    ('[1]', "JSON object"),
])
def test_malformed_placement_files(tmp_path, text, fragment):
    (tmp_path / "p.json").write_text(text)
    with pytest.raises(EdgeplaceError, match=fragment):
        Placement.read(tmp_path / "p.json")


def test_unreadable_placement_file(tmp_path):
    with pytest.raises(EdgeplaceError, match="cannot read placement file"):
        Placement.read(tmp_path / "missing.json")


def test_schedulercfg_emits_one_line_per_subtask_in_flink_task_names():
    text = schedulercfg.emit(PLACED, TASKS, HOSTS)
    lines = text.splitlines()
    assert "Source: Events edge-1 (1/1); 10.213.0.151" in lines
    assert "Count (1/2); 10.213.0.101" in lines and "Count (2/2); 10.213.0.101" in lines
    assert "Sink: Counts Sink end (1/1); 10.213.0.101" in lines
    assert "_stream_key_by_map_operator (1/1); 10.213.0.151" in lines  # PyFlink's key-by helper, with Parse
    assert len(lines) == sum(t.parallelism for t in TASKS)


def test_key_by_helpers_belong_to_their_input_or_to_the_operator_keying_a_union():
    from queries.nexmark import job as nexmark
    from queries.qa import job as qa
    helpers = lambda ops: sorted(t.uid for t in all_tasks(ops) if t.task_name == schedulercfg.KEY_HELPER)
    assert helpers(qa.topology(options.parse(["--sites", "edge-1"]))) == ["flag", "src-edge-1"]
    assert helpers(qa.topology(options.parse(["--sites", "edge-1,edge-2", "--opt", "per_site=0"]))) == ["flag", "flag"]
    # one chain per site: each site's helpers run with that site's own operators
    assert helpers(qa.topology(options.parse(["--sites", "edge-1,edge-2"]))) == \
        ["flag@edge-1", "flag@edge-2", "src-edge-1", "src-edge-2"]
    assert helpers(nexmark.topology(options.parse(["--opt", "query=q3"]))) == ["auctions", "persons"]
    assert helpers(nexmark.topology(options.parse(["--opt", "query=q2"]))) == []


@pytest.mark.parametrize("q, partial, merge", [("q5", "count", "hot"), ("q7", "site-max", "max")])
def test_windowed_aggregates_run_in_two_phases_at_several_sites_and_in_one_at_one(q, partial, merge):
    """q5's counts and q7's highest bids: a partial result per site (reading only that site's bids, keyed by
    that site's helper), merged by one operator that keys the union of the sites; one site, or
    `per_site=0`, keeps the one-phase job: the merge reads the single aggregate."""
    from queries.nexmark import job as nexmark
    two = {o.uid: o for o in nexmark.topology(options.parse(["--opt", f"query={q}", "--sites", "edge-1,edge-2"]))}
    for site in ("edge-1", "edge-2"):
        p = two[f"{partial}@{site}"]
        assert (p.inputs, p.key_helper_owners, p.site, p.stateful) == ((f"bids@{site}",), (f"bids@{site}",), site, True)
    assert two[merge].inputs == (f"{partial}@edge-1", f"{partial}@edge-2") and two[merge].key_helper_owners == (merge,)
    assert partial not in two
    for args in (["--sites", "edge-1"], ["--sites", "edge-1,edge-2", "--opt", "per_site=0"]):
        one = {o.uid: o for o in nexmark.topology(options.parse(["--opt", f"query={q}", *args]))}
        first = "count" if q == "q5" else merge
        assert one[first].inputs == ("bids",) and not any("@" in u or u == "site-max" for u in one)


def test_schedulercfg_helper_lines_are_checked_but_optional():
    text = schedulercfg.emit(PLACED, TASKS, HOSTS)
    without = "".join(l + "\n" for l in text.splitlines() if not l.startswith(schedulercfg.KEY_HELPER))
    assert schedulercfg.parse(without, TASKS, HOSTS) == PLACED
    with pytest.raises(EdgeplaceError, match="not a TaskManager"):
        schedulercfg.parse(text.replace("map_operator (1/1); 10.213.0.151", "map_operator (1/1); 10.9.9.9"),
                           TASKS, HOSTS)


def test_schedulercfg_round_trip():
    assert schedulercfg.parse(schedulercfg.emit(PLACED, TASKS, HOSTS), TASKS, HOSTS) == PLACED


@pytest.mark.parametrize("mutate, fragment", [
    (lambda t: t.replace("Count (2/2); 10.213.0.101", "Count (2/2); 10.213.0.151"), "not realisable"),
    (lambda t: t.replace("Count (2/2); 10.213.0.101", "Count (2/2);10.213.0.101"), "malformed line"),
    (lambda t: t.replace("Count (2/2); 10.213.0.101\n", ""), r"subtasks \[2\] of 'Count'"),
    (lambda t: t + "Mystery (1/1); 10.213.0.101\n", "unknown task 'Mystery'"),
    (lambda t: t.replace("Count (2/2); 10.213.0.101", "Count (2/3); 10.213.0.101"), "parallelism"),
    (lambda t: t.replace("Parse (1/1); 10.213.0.151", "Parse (1/1); 10.9.9.9"), "not a TaskManager"),
    (lambda t: t + "Parse (1/1); 10.213.0.151\n", "listed twice"),
    (lambda t: t.replace("Events edge-1 gen (1/1); 10.213.0.151", "Events edge-1 gen (1/1); 10.213.0.101"),
     "parts of operator 'src-edge-1'"),
])
def test_schedulercfg_errors_name_the_problem(mutate, fragment):
    text = mutate(schedulercfg.emit(PLACED, TASKS, HOSTS))
    with pytest.raises(EdgeplaceError, match=fragment):
        schedulercfg.parse(text, TASKS, HOSTS)


def test_schedulercfg_refuses_hosts_shared_by_two_taskmanagers():
    with pytest.raises(EdgeplaceError, match="share host"):
        schedulercfg.parse("", TASKS, {"a": "127.0.0.1", "b": "127.0.0.1"})


@pytest.mark.parametrize("assignments, fragment", [
    ({**PLACED.assignments, "ghost": "edge-1"}, "unknown operator"),
    ({k: v for k, v in PLACED.assignments.items() if k != "sink"}, "missing from the placement"),
    ({**PLACED.assignments, "sink": "cloud-9"}, "not in the cluster"),
    ({**PLACED.assignments, "count": "edge-1"}, "has 2 slots but the placement puts 4"),
])
def test_check_rejects_bad_placements_before_submission(assignments, fragment):
    with pytest.raises(EdgeplaceError, match=fragment):
        check(Placement(assignments), OPS, CLUSTER)


def test_check_requires_the_taskmanager_resource():
    with pytest.raises(EdgeplaceError, match="no external resource 'edge1'"):
        check(PLACED, OPS, {**CLUSTER, "edge-1": TaskManagerInfo("edge-1", "h", 2, {})})


def test_check_accepts_a_placement_that_fits_exactly_and_refuses_one_subtask_more():
    used = sum(o.parallelism for o in OPS if PLACED.assignments[o.uid] == "edge-1")
    exact = {**CLUSTER, "edge-1": TaskManagerInfo("edge-1", "h", used, {"edge1": float(used)})}
    assert check(PLACED, OPS, exact) is None
    with pytest.raises(EdgeplaceError, match=f"has {used - 1} slots"):
        check(PLACED, OPS, {**exact, "edge-1": TaskManagerInfo("edge-1", "h", used - 1, {"edge1": float(used)})})


def test_prune_keeps_the_newest_entries(tmp_path):
    import os
    from placement.records import prune
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x") if i % 2 else (tmp_path / f"f{i}").mkdir()
        os.utime(tmp_path / f"f{i}", (1000 + i, 1000 + i))
    prune(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f3", "f4"]


def test_flink_writes_where_its_own_user_may_on_a_cluster_and_anywhere_on_the_testbed(tmp_path):
    from placement.realize import Target
    local = Target(None, tmp_path)
    assert local.local and local.flink_side(tmp_path / "sinks" / "g-1") == tmp_path / "sinks" / "g-1"
    cluster = Target(None, tmp_path, flink_dir=Path("/opt/edgeplace/data"))
    assert not cluster.local
    assert cluster.flink_side(tmp_path / "sinks" / "g-1") == Path("/opt/edgeplace/data/g-1")

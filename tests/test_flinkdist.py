"""What the client and the TaskManagers are given of the Flink distribution."""
from __future__ import annotations

import zipfile
from pathlib import Path

from placement import flinkdist


def test_a_lean_client_has_flink_python_on_its_classpath_and_ships_an_empty_jar(tmp_path):
    assert not flinkdist.is_lean_client(tmp_path)
    assert "FLINK_OPT_DIR" not in flinkdist.client_env(tmp_path)
    flinkdist.make_lean_client(tmp_path)
    env = flinkdist.client_env(tmp_path)
    lib, opt = Path(env["FLINK_LIB_DIR"]), Path(env["FLINK_OPT_DIR"])
    assert env["FLINK_CONF_DIR"] == str(tmp_path)
    assert any(j.name.startswith("flink-python") for j in lib.iterdir())
    assert any(j.name.startswith("flink-dist") for j in lib.iterdir())
    (shipped,) = [j for j in opt.rglob("*") if j.name.startswith("flink-python")]  # the one `flink run` takes
    assert shipped.stat().st_size < 1000
    assert zipfile.ZipFile(shipped).namelist() == ["META-INF/MANIFEST.MF"]


def test_ansible_sizes_a_taskmanager_for_its_slots_as_the_testbed_does():
    """The Ansible role's default TaskManager process size is the testbed's (`taskmanager_memory_mb`) for every
    slot count, and an explicit `memory_mb` of the inventory wins."""
    import jinja2
    import yaml
    defaults = yaml.safe_load((Path(__file__).parents[1] / "ansible/roles/flink/defaults/main.yml").read_text())
    env = jinja2.Environment(undefined=jinja2.Undefined)
    for slots in range(1, 65):
        flink = env.from_string(defaults["flink_tm_flink_mb"]).render(flink_slots=slots)
        got = env.from_string(defaults["flink_tm_memory_mb"]).render(flink_slots=slots, flink_tm_flink_mb=flink)
        assert int(got) == flinkdist.taskmanager_memory_mb(slots), slots
    assert env.from_string(defaults["flink_tm_memory_mb"]).render(flink_slots=64, flink_tm_flink_mb="1", memory_mb=900) == "900"
    assert flinkdist.taskmanager_memory_mb(4) == 1280 and flinkdist.taskmanager_memory_mb(16) > 1280


def test_a_job_script_that_raises_is_reported_by_its_python_error_not_by_flinks_java_stack():
    """Recorded from a real `flink run` (Flink 2.3) of a script that fails while it builds its job."""
    from placement.flink import run_failure
    out = (Path(__file__).parent / "recorded" / "flink-run-python-error.txt").read_text()
    msg = run_failure(out, 31)
    assert msg.startswith("flink run failed (exit 31): the job script raised NameError: name 'GROUP_CPU_CORES' "
                          "is not defined"), msg
    assert 'line 7, in build' in msg and "\n" not in msg and "PythonDriver" not in msg
    # no Python traceback (e.g. the JobManager refused the job): the client's last lines, as before
    java_only = "\n".join(l for l in out.splitlines() if not l.startswith(("Traceback", " ", "NameError")))
    assert run_failure(java_only, 1).splitlines()[-1].strip() == java_only.strip().splitlines()[-1].strip()

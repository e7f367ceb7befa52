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

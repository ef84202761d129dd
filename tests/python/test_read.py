"""ttmem.status(), buffers() and leaks() against a running workload in another process."""

import pytest

import ttmem
from conftest import cli_json

VOLATILE = {"taken_realtime_ns", "taken_monotonic_ns"}


def test_status_is_the_cli_json(workload, cli):
    ours = ttmem.status(dir=workload.dir)
    theirs = cli_json(cli, workload.dir, "status")
    assert isinstance(ours, dict)
    assert {k: v for k, v in ours.items() if k not in VOLATILE} == \
        {k: v for k, v in theirs.items() if k not in VOLATILE}
    assert len(ours["devices"]) == 8
    assert [p["pid"] for p in ours["processes"]] == [workload.pid]
    dram = ours["devices"][0]["kinds"]["DRAM"]
    assert dram["reserved_bytes"] > 0 and dram["capacity_bytes"] > dram["reserved_bytes"]


def test_buffers_are_the_workloads_live_buffers(workload, cli):
    rows = ttmem.buffers(dir=workload.dir)
    assert isinstance(rows, list) and rows and all(isinstance(b, dict) for b in rows)
    assert {b["pid"] for b in rows} == {workload.pid}
    theirs = cli_json(cli, workload.dir, "buffers", "--limit", "0")
    key = lambda b: (b["device"], b["kind"], b["buffer_id"], b["time_ns"])  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, theirs["buffers"]))
    if workload.truth is not None:
        truth = {(d, kind, i) for d, kind, i in workload.truth["live"]}
        ours = {(b["device"], b["kind"], b["buffer_id"]) for b in rows if b["kind"] != "CB"}
        assert ours == truth
    for b in rows:
        assert {"device", "chip_id", "kind", "size_bytes", "reserved_bytes", "tag",
                "address"} <= b.keys()
        assert b["reserved_bytes"] >= b["size_bytes"] or b["kind"] in ("SYSTEM_MEMORY", "CB")


def test_buffer_filters(workload):
    everything = ttmem.buffers(dir=workload.dir)
    dram = ttmem.buffers(dir=workload.dir, kind="dram")
    assert dram and all(b["kind"] == "DRAM" for b in dram)
    assert len(dram) == sum(b["kind"] == "DRAM" for b in everything)
    dev3 = ttmem.buffers(dir=workload.dir, device=3)
    assert dev3 and all(b["device"] == 3 for b in dev3)
    assert ttmem.buffers(dir=workload.dir, pid=workload.pid + 999_999) == []
    with pytest.raises(ValueError):
        ttmem.buffers(dir=workload.dir, kind="HBM")


def test_tags_come_from_the_workloads_ops(workload):
    tags = {b["tag"] for b in ttmem.buffers(dir=workload.dir)}
    if workload.kind == "testload":
        assert {"ttnn::linear", "ttnn::matmul", "testload::explicit"} <= tags
    else:
        assert any(t.startswith("ttnn::") for t in tags)


def test_leaks_lists_what_an_ended_process_held(tmp_path, testload):
    import json
    import os
    import subprocess
    directory = str(tmp_path / "segments")
    truth = str(tmp_path / "truth")
    proc = subprocess.Popen([testload, "--devices", "2", "--threads", "2", "--ops", "300",
                             "--truth", truth], env=dict(os.environ, TTMEM_DIR=directory),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    proc.communicate("exit\n", timeout=60)  # ends with its buffers allocated
    with open(truth + ".1.json") as f:
        live = {tuple(x) for x in json.load(f)["live"]}
    assert live
    leaks = ttmem.leaks(dir=directory)
    assert {l["pid"] for l in leaks} == {proc.pid}
    assert {(l["device"], l["kind"], l["buffer_id"]) for l in leaks if l["kind"] != "CB"} == live
    assert ttmem.status(dir=directory)["leaked_buffers"] == len(leaks)


def test_unusable_directory_raises(tmp_path):
    path = tmp_path / "file"
    path.write_text("not a directory")
    with pytest.raises(RuntimeError):
        ttmem.status(dir=str(path))


def test_a_missing_directory_is_said_and_never_created(tmp_path):
    missing = tmp_path / "typo" / "deeper"
    status = ttmem.status(dir=missing)
    assert status["segment_dir_missing"] is True
    assert status["devices"] == [] and status["processes"] == []
    assert ttmem.buffers(dir=missing) == []
    assert not (tmp_path / "typo").exists()

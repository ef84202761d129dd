"""The client half: this test process reports into its own segment and reads it back."""

import itertools
import json
import os
import subprocess

import pytest

import ttmem


def mine(**filters):
    return ttmem.buffers(pid=os.getpid(), **filters)


_logical_ids = itertools.count(10)  # 0..9 stay free for other tests of this process


@pytest.fixture
def device():
    """A fresh Wormhole device of this process, with nothing left on it afterwards."""
    logical = next(_logical_ids)
    assert ttmem.register_device(logical, chip_id=0xC0DE00 + logical, board="pytest",
                                 trace_region_size=50_000_000, l1_small_size=65536)
    yield logical
    for b in mine(device=logical):
        if b["kind"] != "CB":
            ttmem.free(logical, b["buffer_id"])
    ttmem.cb_free_all(logical)
    assert mine(device=logical) == []


def test_alloc_and_free_are_read_back(device):
    assert ttmem.enabled()
    assert ttmem.alloc(device, 17, "DRAM", 0x40000, 1 << 20, page_size=2048)
    (b,) = mine(device=device)
    assert (b["kind"], b["buffer_id"], b["address"], b["size_bytes"]) == ("DRAM", 17, 0x40000,
                                                                          1 << 20)
    # A string, so that JSON readers that parse numbers as doubles keep every chip apart.
    assert b["chip_id"] == hex(0xC0DE00 + device)
    assert mine(chip_id=0xC0DE00 + device) == mine(chip_id=hex(0xC0DE00 + device)) == [b]
    # 512 pages over 12 lock-step banks: 43 pages of 2048 B on each of the 12.
    assert b["reserved_bytes"] == 43 * 2048 * 12
    assert b["tag"] == ""
    assert ttmem.segment_path().startswith(os.environ["TTMEM_DIR"])
    assert ttmem.free(device, 17)
    assert mine(device=device) == []


def test_registered_descriptor_shows_in_status(device):
    ttmem.alloc(device, 1, ttmem.KINDS.index("L1"), 0x100000, 4096, page_size=2048)
    (dev,) = [d for d in ttmem.status()["devices"] if d["chip_id"] == hex(0xC0DE00 + device)]
    assert dev["board"] == "pytest"
    assert dev["arch"] == "wormhole_b0"
    assert dev["grid"] == [8, 8]
    assert dev["kinds"]["DRAM"]["banks"] == 12
    assert dev["kinds"]["DRAM"]["capacity_bytes"] == 12 * ((1 << 30) - 50_000_000)
    assert dev["kinds"]["TRACE"]["capacity_bytes"] == 12 * 50_000_000
    assert dev["kinds"]["L1"]["banks"] == 64
    assert dev["kinds"]["L1"]["buffers"] == 1
    assert dev["l1_small_size_bytes"] == 65536


def test_sharded_buffer_fields(device):
    ttmem.alloc(device, 5, "L1", 0x120000, 65536, page_size=2048, size_per_bank=4096,
                num_banks=16, num_cores=16, layout="WIDTH_SHARDED", tag="explicit")
    (b,) = mine(device=device)
    assert b["layout"] == "WIDTH_SHARDED"
    assert b["banks"] == 16 and b["cores"] == 16
    assert b["size_per_bank_bytes"] == 4096
    assert b["reserved_bytes"] == 4096 * 64  # the range is taken on every L1 bank
    assert b["tag"] == "explicit"


def test_op_scopes_tag_allocations(device):
    with ttmem.op("ttnn::linear"):
        ttmem.alloc(device, 1, "DRAM", 0x1000, 4096)
        with ttmem.op("ttnn::matmul"):
            ttmem.alloc(device, 2, "DRAM", 0x3000, 4096)
        ttmem.alloc(device, 3, "DRAM", 0x5000, 4096, tag="given")

    @ttmem.op("ttnn::add")
    def add():
        ttmem.alloc(device, 4, "DRAM", 0x7000, 4096)

    add()
    ttmem.alloc(device, 5, "DRAM", 0x9000, 4096)
    tags = {b["buffer_id"]: b["tag"] for b in mine(device=device)}
    assert tags == {1: "ttnn::linear", 2: "ttnn::matmul", 3: "given", 4: "ttnn::add", 5: ""}


def test_op_scope_pops_on_exception(device):
    with pytest.raises(KeyError):
        with ttmem.op("ttnn::failing"):
            raise KeyError("boom")
    ttmem.alloc(device, 9, "DRAM", 0x1000, 4096)
    assert mine(device=device)[0]["tag"] == ""


def _cb_figures(device):
    """The device's CB kind (the L1 CB sets cover), CB region in use per core, and programs."""
    (dev,) = [d for d in ttmem.status()["devices"] if d["chip_id"] == hex(0xC0DE00 + device)]
    cb = dev["kinds"]["CB"]
    assert cb["requested_bytes"] == cb["reserved_bytes"]
    return cb["reserved_bytes"], dev["cb_region_in_use_bytes"], dev["cb_programs"]


def test_circular_buffers(device):
    # Program 42: a CB of 8192 B per core on two core ranges, then one of 2048 B above it on core
    # (0, 0): one record per CB and core range.
    ttmem.cb_alloc(device, [(0, 0, 3, 3), (4, 0, 7, 0)], 102_400, 8192, program_id=42)
    ttmem.cb_alloc(device, [(0, 0, 0, 0)], 110_592, 2048, program_id=42)
    cbs = mine(device=device, kind="CB")
    assert sorted((b["core_range"], b["cores"], b["reserved_bytes"]) for b in cbs) == [
        ([0, 0, 0, 0], 1, 2048),
        ([0, 0, 3, 3], 16, 8192 * 16),
        ([4, 0, 7, 0], 4, 8192 * 4),
    ]
    assert {b["program_id"] for b in cbs} == {42}
    # Core (0, 0) reaches 102400 + 10240; the 19 other cores of the program 102400 + 8192.
    assert _cb_figures(device) == (10240 + 19 * 8192, 10240, 1)

    # Program 43 stacks from the same base on every core: the sets overlap and are not added.
    ttmem.cb_alloc(device, [(0, 0, 7, 7)], 102_400, 4096, program_id=43)
    assert _cb_figures(device) == (10240 + 19 * 8192 + 44 * 4096, 10240, 2)

    # Destroying program 42 frees its set only.
    assert ttmem.cb_free_program(device, 42)
    assert {b["program_id"] for b in mine(device=device, kind="CB")} == {43}
    assert _cb_figures(device) == (64 * 4096, 4096, 1)
    with pytest.raises(ttmem.Error) as gone:
        ttmem.cb_free_program(device, 42)
    assert gone.value.status == -4  # TTMEM_ENOENT: the program holds no CBs here
    assert ttmem.cb_free_all(device)
    assert mine(device=device, kind="CB") == []
    assert _cb_figures(device) == (0, 0, 0)


def test_refused_reports_raise(device):
    with pytest.raises(ttmem.Error) as unknown:
        ttmem.free(device, 123456)
    assert unknown.value.status == -4
    with pytest.raises(ttmem.Error) as nodev:
        ttmem.alloc(63, 1, "DRAM", 0x1000, 4096)
    assert nodev.value.status == -2
    with pytest.raises(ValueError):
        ttmem.alloc(device, 1, "HBM", 0x1000, 4096)
    with pytest.raises(ValueError):
        ttmem.alloc(device, 1, "CB", 0x1000, 4096)
    with pytest.raises(ValueError):
        ttmem.cb_alloc(device, [(0, 0, 1)], 0x1000, 64)
    process = [p for p in ttmem.status()["processes"] if p["pid"] == os.getpid()][0]
    assert process["unknown_frees"] >= 1


def test_chip_ids_stay_apart_for_readers_that_parse_numbers_as_doubles(cli):
    """jq and JavaScript read every JSON number as a double: eight 64-bit chip ids that differ in
    their low bits would read as one chip. The CLI's JSON writes them as hex strings."""
    base = 0x1234_5678_9ABC_DE00
    assert len({float(base + n) for n in range(8)}) == 1  # what numbers would have given
    logicals = [next(_logical_ids) for _ in range(8)]
    for n, logical in enumerate(logicals):
        assert ttmem.register_device(logical, chip_id=base + n, board="pytest")
        assert ttmem.alloc(logical, 1, "DRAM", 0x40000, 4096, page_size=2048)
    try:
        for command, rows in (("status", "devices"), ("buffers", "buffers")):
            out = subprocess.run([cli, "--dir", os.environ["TTMEM_DIR"], command, "--json"],
                                 check=True, capture_output=True, text=True, timeout=60).stdout
            doc = json.loads(out, parse_int=float)  # as jq reads it
            assert all(isinstance(r["chip_id"], str) for r in doc[rows]), command
            ids = [r["chip_id"] for r in doc[rows] if r["chip_id"].startswith("0x123456789abc")]
            assert sorted(ids) == [hex(base + n) for n in range(8)], command
    finally:
        for logical in logicals:
            ttmem.free(logical, 1)


def test_peaks_since_reset_leave_the_segments_lifetime_peak_alone(device):
    assert ttmem.alloc(device, 1, "DRAM", 0x40000, 1 << 20, page_size=2048)
    assert ttmem.free(device, 1)
    dram = 43 * 2048 * 12  # 512 pages over 12 lock-step banks, as reserved
    assert ttmem.peaks()[(device, "DRAM")] == dram
    assert ttmem.reset_peaks()
    assert ttmem.peaks()[(device, "DRAM")] == 0
    assert ttmem.alloc(device, 2, "L1", 0x100000, 4096, page_size=2048)
    (l1,) = mine(device=device)
    peaks = ttmem.peaks()
    assert peaks[(device, "L1")] == l1["reserved_bytes"]
    assert (device, "DRAM") in peaks and (device, "CB") not in peaks
    # Readers still see the process's lifetime peak; a question is not an invalid call.
    (dev,) = [d for d in ttmem.status()["devices"] if d["chip_id"] == hex(0xC0DE00 + device)]
    assert dev["kinds"]["DRAM"]["peak_bytes"] == dram
    process = [p for p in ttmem.status()["processes"] if p["pid"] == os.getpid()][0]
    invalid = process["invalid_calls"]
    ttmem.peaks()
    process = [p for p in ttmem.status()["processes"] if p["pid"] == os.getpid()][0]
    assert process["invalid_calls"] == invalid

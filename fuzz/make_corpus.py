#!/usr/bin/python3
"""Regenerates the seed corpora under fuzz/corpus/ from real ttmem output:

  segment/     segments written by the client library (ttmem_testload), in the segment
               fuzzer's sparse form, with a small slab and ring so each is a few KiB
  recording/   a recording made by `ttmem record` around ttmem_testload
  legacy/      AllocMessage streams in the 72-, 112- and 144-byte forms
  http_query/  request targets for every API endpoint and parameter
  tt_metal_region/  tt-metal counter files of both versions (docs/protocol.md), whole and as
               patches over a well-formed region
The http_response/ seeds (answers a server might send `ttmem --server`) are written by hand, and
the json_reader/ seeds cut down by hand from `ttmem status --json` and `ttmem buffers --json`.

    fuzz/make_corpus.py BUILD_DIR      (a normal build with the tests: make build)
"""
import glob
import os
import struct
import subprocess
import sys
import tempfile

from segment_to_input import encode as segment_input

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(fuzzer, name, data):
    os.makedirs(os.path.join(CORPUS, fuzzer), exist_ok=True)
    with open(os.path.join(CORPUS, fuzzer, name), "wb") as f:
        f.write(data)


def testload(build, tmp, devices, ops, extra_env=None):
    """Runs ttmem_testload with a small segment; it exits leaving its buffers live, so its
    segment stays behind for a collector. Returns the segment path."""
    env = dict(os.environ, TTMEM_DIR=os.path.join(tmp, "seg"), TTMEM_MAX_BUFFERS="64",
               TTMEM_RING_EVENTS="16", **(extra_env or {}))
    subprocess.run([os.path.join(build, "tests/integration/ttmem_testload"), "--devices",
                    str(devices), "--threads", "1", "--ops", str(ops), "--truth",
                    os.path.join(tmp, "truth")],
                   input=b"next\nexit\n", env=env, check=True, stdout=subprocess.DEVNULL)
    (path,) = glob.glob(os.path.join(tmp, "seg", "ttmem-*.seg"))
    return path


def segments(build):
    for devices, ops, step in ((1, 120, 0), (2, 60, 0), (4, 200, 3)):
        with tempfile.TemporaryDirectory() as tmp:
            path = testload(build, tmp, devices, ops)
            with open(path, "rb") as f:
                data = f.read()
            write("segment", f"testload_{devices}dev_{ops}ops",
                  segment_input(data, os.path.basename(path), step))
    write("segment", "truncated_header", b"TTMEMSEG" + b"\0" * 100)


def recording(build):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run.ttrec")
        load = [os.path.join(build, "tests/integration/ttmem_testload"), "--devices", "2",
                "--threads", "1", "--ops", "60", "--truth", os.path.join(tmp, "truth")]
        subprocess.run([os.path.join(build, "src/cli/ttmem"), "--dir", os.path.join(tmp, "seg"),
                        "record", "-o", out, "--checkpoint", "0.1", "--"] + load,
                       input=b"next\nexit\n", check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, TTMEM_MAX_BUFFERS="64", TTMEM_RING_EVENTS="64"))
        with open(out, "rb") as f:
            data = f.read()
    write("recording", "testload_2dev", data)
    write("recording", "header_only", data[:64])


# --- legacy AllocMessage streams (protocol/legacy.h) --------------------------------------
ALLOC, FREE, QUERY, DUMP, INFO_QUERY, CB_ALLOC, CB_FREE, KERNEL_LOAD = 1, 2, 3, 5, 6, 8, 9, 10
DRAM, L1, L1_SMALL, TRACE = 0, 1, 3, 4


def message(form, kind, device=0, size=0, buffer_type=0, pid=4242, address=0):
    head = struct.pack("<B3xiQB3xiQQ", kind, device, size, buffer_type, pid, address,
                       1_700_000_000_000_000_000)
    return head + b"\0" * (form - len(head))


def session(form):
    return b"".join([
        message(form, ALLOC, 0, 1 << 20, DRAM, address=0x1000),
        message(form, ALLOC, 1, 4096, L1, address=0x20000),
        message(form, ALLOC, 0, 2048, L1_SMALL, address=0x30000),
        message(form, CB_ALLOC, 0, 65536, address=0x40000),
        message(form, ALLOC, 0, 1 << 20, DRAM, address=0x1000),  # duplicate
        message(form, FREE, 1, 0, L1, address=0x20000),
        message(form, FREE, 3, 0, TRACE, address=0x99),  # unknown free
        message(form, CB_FREE, 0, address=0x40000),
        message(form, KERNEL_LOAD, 0, 1024),
        message(form, QUERY, 0),
        message(form, DUMP, 0),
    ])


def legacy():
    # The first byte selects the form (0 detect, 1 = 72, 2 = 112, 3 = 144) and the split.
    for control, form in ((0x00, 72), (0x04, 112), (0x08, 144), (0x2D, 112), (0xFF, 144)):
        write("legacy", f"session_{form}_{control:02x}", bytes([control]) + session(form))
    write("legacy", "query_72", b"\x00" + message(72, QUERY, 1))
    write("legacy", "device_info_112", b"\x00" + message(112, INFO_QUERY, 0))
    write("legacy", "device_info_144", b"\x10" + message(144, INFO_QUERY, -1))
    write("legacy", "bad_device_type", b"\x01" + message(72, ALLOC, 70, 8, 9))
    write("legacy", "out_of_step", b"\x00" + session(72)[:200] + b"\x07" * 100)


def http_queries():
    targets = [
        "/api/v1/status", "/api/v1/devices", "/api/v1/processes", "/api/v1/leaks",
        "/api/v1/buffers?device=0&kind=dram&pid=100&sort=size&limit=2",
        "/api/v1/buffers?kind=L1_SMALL&sort=age", "/api/v1/buffers?device=1&limit=0",
        "/api/v1/buffers?pid=999", "/api/v1/buffers?limit=99999999999999999999",
        "/api/v1/buffers?kind=cb&kind=l1", "/api/v1/buffers?sort=name",
        "/api/v1/history?device=0&kind=l1&seconds=2", "/api/v1/history?seconds=315360000",
        "/api/v1/history?device=7", "/api/v1/status?verbose=1",
        "/api/v1/buffers?device=%30&kind=%64ram", "/api/v1/buffers?device=+1&kind=tr%ce",
        # top's sort keys, which buffers and programs take too
        "/api/v1/buffers?sort=tag&limit=3", "/api/v1/programs?sort=address&device=0",
    ]
    for i, t in enumerate(targets):
        write("http_query", f"target_{i:02d}", t.encode())


# tt-metal's DeviceMemoryRegion (docs/protocol.md, "tt-metal's own per-chip counters").
REGION_SIZE = 8576
KINDS = 5


def tt_metal_region(version, chip, processes=(), remote=(), init_ready=True):
    """A whole region file: processes are (pid, [bytes per kind], updated_ns, name), remote
    chips (logical id, [bytes per kind]); chip slot 0 is the file's own chip (logical id 0)."""
    totals = [0] * KINDS
    local = [0] * KINDS
    for _, counts, _, _ in processes:
        totals = [a + b for a, b in zip(totals, counts)]
        local = [a + b for a, b in zip(local, counts)]
    for _, counts in remote:
        totals = [a + b for a, b in zip(totals, counts)]
    out = bytearray(REGION_SIZE)
    struct.pack_into("<IIQI4xQQI4x5Q", out, 0, version, len(processes), 1, 1, 0, chip, 0,
                     *totals)
    chips = [(0, 0, local)] + [(lid, 1, counts) for lid, counts in remote]
    for i in range(16):
        lid, is_remote, counts = chips[i] if i < len(chips) else (0xFFFFFFFF, 0, [0] * KINDS)
        struct.pack_into("<II5Q", out, 88 + 48 * i, lid, is_remote, *counts)
    for i, (pid, counts, updated, name) in enumerate(processes):
        struct.pack_into("<i4x5QQ64s", out, 856 + 120 * i, pid, *counts, updated, name.encode())
    if version >= 4 and init_ready:
        struct.pack_into("<I", out, 8536, 0x52454459)
    return bytes(out)


def tt_metal_regions():
    # Input: flags (bit 0: patches over a well-formed region, bit 1: version 4), chip id u64.
    chip = 0x1234
    head = lambda flags: bytes([flags]) + struct.pack("<Q", chip)
    now = 1_800_000_000 * 10**9
    live = [(1, [1 << 20, 4096, 0, 0, 2048], now, "python3"),
            (2, [1 << 30, 0, 0, 1 << 24, 0], now, "pytest")]
    write("tt_metal_region", "v3_two_processes", head(0) + tt_metal_region(3, chip, live))
    write("tt_metal_region", "v4_remote_chip",
          head(0) + tt_metal_region(4, chip, live, remote=[(5, [100, 200, 0, 0, 0])]))
    write("tt_metal_region", "v4_not_ready",
          head(0) + tt_metal_region(4, chip, live, init_ready=False))
    write("tt_metal_region", "v5_unknown", head(0) + tt_metal_region(5, chip, live))
    write("tt_metal_region", "truncated", head(0) + tt_metal_region(4, chip, live)[:900])
    write("tt_metal_region", "wrong_chip", head(0) + tt_metal_region(4, chip + 1, live))
    # Patches: a process slot (pid 7, DRAM 4096) and its total; a repeated pid; a bad pid.
    slot = struct.pack("<i4xQ", 7, 4096)
    write("tt_metal_region", "patch_v4_process",
          head(3) + struct.pack("<HB", 856, len(slot)) + slot +
          struct.pack("<HB", 48, 8) + struct.pack("<Q", 4096))
    write("tt_metal_region", "patch_v3_repeated_pid",
          head(1) + struct.pack("<HB", 856, len(slot)) + slot +
          struct.pack("<HB", 976, len(slot)) + slot)
    write("tt_metal_region", "patch_v4_bad_pid",
          head(3) + struct.pack("<HB", 856, 4) + struct.pack("<i", -3))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    segments(sys.argv[1])
    recording(sys.argv[1])
    legacy()
    http_queries()
    tt_metal_regions()

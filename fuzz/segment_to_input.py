#!/usr/bin/python3
"""Turns a segment file into the segment fuzzer's input form (see segment_fuzzer.cpp): an
optional name line, the 4096-byte header, then one patch per run of non-zero bytes.

    fuzz/segment_to_input.py SEGMENT OUTPUT [--name NAME] [--step-every N]

--step-every N puts a read step after every N patches, so the reader sees the segment filled
in stages, as it sees a live one.
"""
import argparse
import struct

HEADER = 4096
MAX_PATCH = 0xFFFF
# Zero gaps shorter than a patch head are cheaper to carry than to split on.
MIN_GAP = 8


def nonzero_runs(data, start):
    runs, i, n = [], start, len(data)
    while i < n:
        while i < n and data[i] == 0:
            i += 1
        if i == n:
            break
        j, zeros = i, 0
        while j < n and zeros < MIN_GAP:
            zeros = zeros + 1 if data[j] == 0 else 0
            j += 1
        end = j - zeros
        for at in range(i, end, MAX_PATCH):
            runs.append((at, data[at:min(end, at + MAX_PATCH)]))
        i = j
    return runs


def encode(data, name=None, step_every=0):
    out = bytearray()
    if name is not None:
        out += name.encode() + b"\n"
    out += data[:HEADER]
    for count, (offset, chunk) in enumerate(nonzero_runs(data, HEADER), 1):
        out += struct.pack("<IH", offset, len(chunk)) + chunk
        if step_every and count % step_every == 0:
            out += struct.pack("<IH", 0, 0)
    return bytes(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("segment")
    p.add_argument("output")
    p.add_argument("--name")
    p.add_argument("--step-every", type=int, default=0)
    a = p.parse_args()
    with open(a.segment, "rb") as f:
        data = f.read()
    with open(a.output, "wb") as f:
        f.write(encode(data, a.name, a.step_every))


if __name__ == "__main__":
    main()

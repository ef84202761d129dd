"""ttmem: device-memory tracking for Tenstorrent accelerators, from Python.

Two halves:

* The client API reports what this process allocates, into its own shared-memory segment
  (``libttmem.so``): :func:`register_device`, :func:`alloc`, :func:`free`, :func:`cb_alloc`,
  :func:`cb_free_program`, :func:`cb_free_all` and the :func:`op` context manager that tags what is allocated inside it.
* The read API folds every tracked process (this one included) into one picture, returned as
  plain dicts and lists with the fields of ``ttmem status --json``, ``ttmem buffers --json`` and
  ``ttmem leaks --json``: :func:`status`, :func:`buffers`, :func:`leaks`.

The segment directory is ``$TTMEM_DIR`` (default ``/dev/shm/ttmem-<uid>``). The client reads it
once, at this process's first report; the read functions take ``dir=`` to look elsewhere.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterable, Mapping, Optional, Sequence

from . import _ttmem

__all__ = [
    "KINDS", "LAYOUTS", "ARCHS", "Error",
    "register_device", "alloc", "free", "cb_alloc", "cb_free_program", "cb_free_all", "op",
    "enabled", "segment_path", "setup_message", "reset_peaks", "peaks",
    "status", "buffers", "leaks",
]

#: Memory kinds, by their number (tt-metal's BufferType, then CB for circular buffers).
KINDS = ("DRAM", "L1", "SYSTEM_MEMORY", "L1_SMALL", "TRACE", "CB")
#: tt-metal's TensorMemoryLayout names, by their number.
LAYOUTS = ("INTERLEAVED", "SINGLE_BANK", "HEIGHT_SHARDED", "WIDTH_SHARDED", "BLOCK_SHARDED",
           "ND_SHARDED")
ARCHS = ("unknown", "grayskull", "wormhole_b0", "blackhole")

_OK, _DISABLED = 0, 1


class Error(RuntimeError):
    """A report the client library refused (bad argument, unknown device, unknown buffer...).

    ``status`` is the negative ``ttmem_status`` value of the C API.
    """

    def __init__(self, status: int, what: str):
        super().__init__(f"{what}: {_ttmem.status_string(status)}")
        self.status = status


def _check(status: int, what: str) -> bool:
    """True when recorded, False when tracking is off (TTMEM_DISABLE); raises on refusal."""
    if status < 0:
        raise Error(status, what)
    return status == _OK


def _index(value: Any, names: Sequence[str], what: str) -> int:
    if isinstance(value, str):
        key = value.upper()
        upper = [n.upper() for n in names]
        if key in upper:
            return upper.index(key)
        raise ValueError(f"unknown {what} {value!r}; one of {', '.join(names)}")
    number = int(value)
    if not 0 <= number < len(names):
        raise ValueError(f"{what} {number} out of range 0..{len(names) - 1}")
    return number


# --- the client API ------------------------------------------------------------------------------

_GEOMETRY_FIELDS = ("capacity", "bank_size", "bank_base", "banks", "alignment")


def _preset_kinds(arch: int, grid: Sequence[int], l1_per_core: int, unreserved_base: int,
                  trace_region_size: int, l1_small_size: int) -> dict:
    """Geometry of a Wormhole or Blackhole chip from the tt-metal facts (12 x 1 GiB DRAM banks
    on Wormhole, 8 x 4,278,190,080 B on Blackhole; one L1 bank per compute core)."""
    if arch == ARCHS.index("blackhole"):
        dram_banks, dram_bank, dram_align = 8, 4_278_190_080, 64
    else:
        dram_banks, dram_bank, dram_align = 12, 1 << 30, 32
    cores = int(grid[0]) * int(grid[1])
    l1_bank = max(l1_per_core - unreserved_base - l1_small_size, 0)
    dram_free = dram_bank - trace_region_size
    kinds = {
        "DRAM": dict(bank_size=dram_free, bank_base=0, banks=dram_banks, alignment=dram_align),
        "L1": dict(bank_size=l1_bank, bank_base=unreserved_base, banks=cores, alignment=16),
        "CB": dict(bank_size=l1_bank, bank_base=unreserved_base, banks=cores,
                   alignment=dram_align),
    }
    if trace_region_size:
        kinds["TRACE"] = dict(bank_size=trace_region_size, bank_base=dram_free,
                              banks=dram_banks, alignment=dram_align)
    if l1_small_size:
        kinds["L1_SMALL"] = dict(bank_size=l1_small_size, bank_base=l1_per_core - l1_small_size,
                                 banks=cores, alignment=16)
    return kinds


def register_device(logical_id: int, *, chip_id: Optional[int] = None,
                    arch: Any = "wormhole_b0", grid: Sequence[int] = (8, 8),
                    l1_per_core: Optional[int] = None, unreserved_base: int = 102_400,
                    trace_region_size: int = 0, l1_small_size: int = 0,
                    kinds: Optional[Mapping[Any, Any]] = None,
                    board: Optional[str] = None) -> bool:
    """Registers (or re-registers) a device of this process; must precede its reports.

    ``kinds`` maps a kind (name or number) to its geometry: a dict with ``capacity``,
    ``bank_size``, ``bank_base``, ``banks`` and ``alignment`` (capacity defaults to
    ``banks * bank_size``), or a tuple in that order. Without ``kinds`` the geometry of a
    Wormhole (``arch="wormhole_b0"``) or Blackhole chip is derived from the other arguments.
    ``chip_id`` is the stable unique chip id (default: the logical id).

    Returns True when recorded, False when tracking is off; raises :class:`Error` otherwise.
    """
    arch_id = _index(arch, ARCHS, "arch")
    if l1_per_core is None:
        l1_per_core = 1_572_864 if arch_id == ARCHS.index("blackhole") else 1_499_136
    if kinds is None:
        kinds = _preset_kinds(arch_id, grid, l1_per_core, unreserved_base, trace_region_size,
                              l1_small_size)
    table = [(0, 0, 0, 0, 0)] * len(KINDS)
    for key, geometry in kinds.items():
        k = _index(key, KINDS, "kind")
        if isinstance(geometry, Mapping):
            unknown = set(geometry) - set(_GEOMETRY_FIELDS)
            if unknown:
                raise ValueError(f"unknown geometry fields {sorted(unknown)}")
            g = {f: int(geometry.get(f, 0)) for f in _GEOMETRY_FIELDS}
        else:
            g = dict(zip(_GEOMETRY_FIELDS, (int(v) for v in geometry)))
            g = {f: g.get(f, 0) for f in _GEOMETRY_FIELDS}
        if not g["capacity"]:
            g["capacity"] = g["banks"] * g["bank_size"]
        table[k] = tuple(g[f] for f in _GEOMETRY_FIELDS)
    status_code = _ttmem.register_device(
        int(logical_id), int(logical_id if chip_id is None else chip_id), arch_id,
        int(grid[0]), int(grid[1]), int(l1_per_core), int(unreserved_base),
        int(trace_region_size), int(l1_small_size), table, board)
    return _check(status_code, f"register_device({logical_id})")


def alloc(device: int, buffer_id: int, kind: Any, address: int, size: int, *,
          page_size: int = 0, size_per_bank: int = 0, num_banks: int = 0, num_cores: int = 0,
          layout: Any = "INTERLEAVED", tag: Optional[str] = None) -> bool:
    """Reports a buffer allocation (the fields of ``ttmem_buffer_desc``).

    ``kind`` is a name or number (DRAM..TRACE); ``tag`` defaults to the innermost :func:`op`
    of this thread. ``size_per_bank=0`` derives it as tt-metal does; ``num_banks=0`` uses the
    kind's bank count. Identity is (this process, device, buffer_id), never the address.
    """
    k = _index(kind, KINDS, "kind")
    if k == KINDS.index("CB"):
        raise ValueError("circular buffers are reported with cb_alloc()")
    return _check(_ttmem.buffer_alloc(int(device), int(buffer_id), k, int(address), int(size),
                                      int(page_size), int(size_per_bank), int(num_banks),
                                      int(num_cores), _index(layout, LAYOUTS, "layout"), tag),
                  f"alloc(device={device}, buffer_id={buffer_id})")


def free(device: int, buffer_id: int) -> bool:
    """Reports that a buffer was freed."""
    return _check(_ttmem.buffer_free(int(device), int(buffer_id)),
                  f"free(device={device}, buffer_id={buffer_id})")


def cb_alloc(device: int, ranges: Iterable[Sequence[int]], address: int, size_per_core: int,
             program_id: int = 0) -> bool:
    """Reports a circular buffer of ``size_per_core`` bytes at ``address`` on every core of
    ``ranges``: inclusive rectangles ``(x0, y0, x1, y1)``."""
    rs = [tuple(int(v) for v in r) for r in ranges]
    if any(len(r) != 4 for r in rs):
        raise ValueError("each core range is (x0, y0, x1, y1)")
    return _check(_ttmem.cb_alloc(int(device), rs, int(address), int(size_per_core),
                                  int(program_id)), f"cb_alloc(device={device})")


def cb_free_program(device: int, program_id: int) -> bool:
    """Reports that one program's circular buffers on the device are gone (the program was
    destroyed: tt-metal's ``track_deallocate_cb``, once per program and chip). Every live
    program keeps its own CB set; sets overlap from the same base and are never added."""
    return _check(_ttmem.cb_free_program(int(device), int(program_id)),
                  f"cb_free_program(device={device}, program_id={program_id})")


def cb_free_all(device: int) -> bool:
    """Reports that every program's circular buffers on the device are gone (the device
    closed, or its program cache was cleared)."""
    return _check(_ttmem.cb_free_all(int(device)), f"cb_free_all(device={device})")


class op(contextlib.ContextDecorator):  # noqa: N801 - reads as a function at the call site
    """Tags what this thread allocates inside the block (or decorated function) with ``name``;
    the innermost op wins::

        with ttmem.op("ttnn::linear"):
            ttmem.alloc(0, 17, "DRAM", 0x40000, 1 << 20)
    """

    def __init__(self, name: str):
        self.name = str(name)
        self._pushed = []

    def __enter__(self):
        self._pushed.append(_check(_ttmem.op_push(self.name), f"op({self.name!r})"))
        return self

    def __exit__(self, *exc):
        if self._pushed.pop():
            _ttmem.op_pop()
        return False


def enabled() -> bool:
    """True when this process's reports are recorded (starts tracking on first use)."""
    return _ttmem.enabled()


def segment_path() -> Optional[str]:
    """This process's segment file, or None before its first report (or when disabled)."""
    return _ttmem.segment_path()


def setup_message() -> Optional[str]:
    """Why set-up did not go as configured (an unusable TTMEM_DIR, say), as a sentence saying
    what to do; None when it did."""
    return _ttmem.setup_message()


def reset_peaks() -> bool:
    """Starts a new peak window for this process: from now on :func:`peaks` answers the most
    it holds at any moment. False when tracking is off."""
    return _check(_ttmem.reset_peaks(), "reset_peaks()")


def peaks() -> dict:
    """``{(device, kind): bytes}``: the most reserved bytes (over all banks) this process held at
    one moment on each device it registered, per kind, since :func:`reset_peaks` (or since it
    registered the device). CBs are left out: a process's CB sets overlap, so their sum is no
    figure of the device. Empty when tracking is off."""
    return {(device, KINDS[kind]): peak for device, kind, peak in _ttmem.peaks()}


# --- the read API --------------------------------------------------------------------------------

def _dir(dir: Optional[str]) -> str:  # noqa: A002 - the documented keyword
    return "" if dir is None else os.fspath(dir)


def status(dir: Optional[str] = None) -> dict:  # noqa: A002
    """Devices, kinds and processes: the same dict as ``ttmem status --json``."""
    return _ttmem.status(_dir(dir))


def buffers(dir: Optional[str] = None, *, device: Optional[int] = None,  # noqa: A002
            kind: Any = None, pid: Optional[int] = None,
            chip_id: Any = None) -> list:
    """Live buffers and CBs of every tracked process, as in ``ttmem buffers --json``: one dict
    each (pid, device, chip_id, kind, buffer_id, address, size_bytes, reserved_bytes, tag...).
    ``chip_id`` is a hex string ("0x7000"), as in the JSON. Filters: ``device`` (logical id),
    ``chip_id`` (a number or such a string), ``kind`` (name or number), ``pid``."""
    rows = _ttmem.buffers(_dir(dir), pid=None if pid is None else int(pid))
    if kind is not None:
        kind_name = KINDS[_index(kind, KINDS, "kind")]
        rows = [b for b in rows if b["kind"] == kind_name]
    if device is not None:
        rows = [b for b in rows if b["device"] == int(device)]
    if chip_id is not None:
        wanted = int(chip_id, 16) if isinstance(chip_id, str) else int(chip_id)
        rows = [b for b in rows if int(b["chip_id"], 16) == wanted]
    return rows


def leaks(dir: Optional[str] = None) -> list:  # noqa: A002
    """Buffers that ended processes still held, as in ``ttmem leaks --json``."""
    return _ttmem.leaks(_dir(dir))

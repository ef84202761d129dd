"""pytest plugin: fail any test that leaves device buffers allocated by this process.

Enable it with ``pytest -p ttmem.pytest_plugin --ttmem-leaks`` (or ``pytest_plugins =
["ttmem.pytest_plugin"]`` in a conftest.py and ``ttmem_leaks = true`` in the ini file).

For every test, the process's live buffers are read from its own ttmem segment before the
test's setup and after its teardown. A buffer that is live afterwards and was not before is a
leak, unless a fixture of wider scope than ``function`` allocated it (a module- or session-scoped
model, say): those belong to the fixture and are freed when it is torn down. Before judging, the
garbage collector runs once, so tensors that are only waiting for it are not counted.

A leaking test's teardown is reported failed (``LEAKED``), with one line per buffer: device,
kind, size, tag. ``@pytest.mark.ttmem_allow_leaks`` exempts a test whose buffers are meant to
outlive it. Circular buffers are not counted unless ``--ttmem-leaks-include-cbs`` is given:
tt-metal keeps a program's CBs until the device's next program, by design.

The session header says whether tracking is on. When it cannot start (an unusable TTMEM_DIR, or
TTMEM_DISABLE set), nothing could be judged, so every test that asked for the check errors in
its setup with the reason, rather than passing unchecked.

Limits, as pytest-memray's ``limit_memory`` and ``limit_leaks``, per test by marker or for every
test by option (a marker wins over the option):

* ``@pytest.mark.limit_device_memory(l1="1 MiB", dram="100 MiB", device=0)``
  (``--ttmem-limit-device-memory "l1=1 MiB,dram=100 MiB,device=0"``): the test fails when the
  most this process held at one moment, from the test's setup to the end of its call, exceeds a
  limit: reserved bytes over all banks of the kind, on ``device`` (every device without it).
  The failure lists the largest buffers of that kind live when the call ended.
* ``@pytest.mark.limit_device_leaks(max="0 B", warmups=N)`` (``--ttmem-limit-device-leaks
  "0 B"``, ``--ttmem-leak-warmups N``): the test body runs ``N`` times unjudged first (for code
  that fills a cache on its first runs), then once more; the test fails when that last run
  leaves more than ``max`` bytes reserved in buffers that were not live before it.
"""

from __future__ import annotations

import gc
import os
import re
from typing import Dict, List, Optional, Tuple

import pytest

import ttmem
from ttmem import _ttmem

_MARKER = "ttmem_allow_leaks"
_LIMIT_MEMORY = "limit_device_memory"
_LIMIT_LEAKS = "limit_device_leaks"
# The kinds a memory limit may name, as keyword arguments (CB sets overlap: no peak to limit).
_LIMIT_KINDS = {"dram": "DRAM", "l1": "L1", "l1_small": "L1_SMALL", "trace": "TRACE",
                "system_memory": "SYSTEM_MEMORY"}

Key = Tuple[int, str, int, int]


def pytest_addoption(parser):
    group = parser.getgroup("ttmem", "ttmem device-memory leak checks")
    group.addoption("--ttmem-leaks", action="store_true", default=None,
                    help="fail tests that leave device buffers allocated by this process")
    group.addoption("--ttmem-leaks-include-cbs", action="store_true", default=None,
                    help="count circular buffers left allocated as leaks too")
    group.addoption("--ttmem-limit-device-memory", metavar="LIMITS", default=None,
                    help="fail tests whose device memory peaks above these limits, as "
                    "limit_device_memory's arguments: 'l1=1 MiB,dram=100 MiB[,device=0]'")
    group.addoption("--ttmem-limit-device-leaks", metavar="MAX", default=None,
                    help="fail tests that leave more than MAX bytes ('0 B') of new device "
                    "buffers, as limit_device_leaks")
    group.addoption("--ttmem-leak-warmups", metavar="N", type=int, default=0,
                    help="with --ttmem-limit-device-leaks: run each test N times unjudged first")
    parser.addini("ttmem_leaks", type="bool", default=False,
                  help="fail tests that leave device buffers allocated (as --ttmem-leaks)")
    parser.addini("ttmem_leaks_include_cbs", type="bool", default=False,
                  help="count circular buffers as leaks too")


def _flag(config, option: str, ini: str) -> bool:
    value = config.getoption(option)
    return bool(config.getini(ini) if value is None else value)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{_MARKER}: buffers this test leaves allocated on the device are intended "
        "(ttmem leak check)")
    config.addinivalue_line(
        "markers",
        f"{_LIMIT_MEMORY}(l1=None, dram=None, l1_small=None, trace=None, system_memory=None, "
        "device=None): fail the test when this process's device memory peaks above a limit "
        "(sizes as '1 MiB'; every device unless device= is given)")
    config.addinivalue_line(
        "markers",
        f"{_LIMIT_LEAKS}(max='0 B', warmups=0, device=None): fail the test when it leaves more "
        "than max bytes of new device buffers, after warmups unjudged runs of its body")
    config.pluginmanager.register(DeviceLimits(config), "ttmem-device-limits")
    if _flag(config, "ttmem_leaks", "ttmem_leaks"):
        # Tracking starts now, not at the first report, so the header can say whether it works.
        reason = tracking_off_reason()
        if reason is not None:
            config.pluginmanager.register(TrackingOff(reason), "ttmem-leak-checker")
            return
        checker = LeakChecker(_flag(config, "ttmem_leaks_include_cbs", "ttmem_leaks_include_cbs"))
        config.pluginmanager.register(checker, "ttmem-leak-checker")


def _format_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    return f"{n} B"


_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_size(value) -> int:
    """Bytes from 4096, "4096", "0 B", "1.5 MiB" or "2GB"; ValueError saying what is accepted."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise ValueError(f"{value!r} is not a size: give bytes (4096) or a number and a unit "
                         f"(B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), as '1 MiB'")
    return int(float(match.group(1)) * _UNITS[unit])


def _buffer_line(b) -> str:
    return (f"  device {b['device']} (chip {b['chip_id']})  {b['kind']:<8} "
            f"size {_format_size(b['size_bytes'])}  tag {b['tag'] or '-'}  "
            f"id {b['buffer_id']}  address {b['address']:#x}")


def describe(leaked) -> str:
    """The failure text: a headline, then one line per buffer (device, kind, size, tag)."""
    total = sum(b["reserved_bytes"] for b in leaked)
    lines = [f"ttmem: test left {len(leaked)} device buffer(s) allocated "
             f"({_format_size(total)} reserved):"]
    for b in sorted(leaked, key=lambda b: (b["device"], b["kind"], -b["size_bytes"])):
        lines.append(_buffer_line(b))
    lines.append(f"Free them in the test or its fixtures, or mark the test "
                 f"@pytest.mark.{_MARKER} if they are meant to outlive it.")
    return "\n".join(lines)


def live_buffers(include_cbs: bool) -> Dict[Key, dict]:
    """This process's live buffers, read from its own segment, by identity."""
    path = ttmem.segment_path()
    if path is None:  # nothing reported yet (or tracking is off): nothing is live
        return {}
    rows = _ttmem.buffers(os.path.dirname(path), pid=os.getpid(), reap=False)
    return {(b["device"], b["kind"], b["buffer_id"], b["time_ns"]): b for b in rows
            if include_cbs or b["kind"] != "CB"}


def tracking_off_reason() -> Optional[str]:
    """Why this process's reports are not recorded, or None when they are."""
    if ttmem.enabled():
        return None
    return ttmem.setup_message() or "tracking is disabled (TTMEM_DISABLE is set)"


class TrackingOff:
    """Registered instead of LeakChecker when tracking cannot start: says so in the header and
    errors every test that asked for the check, which could not be judged."""

    def __init__(self, reason: str):
        self.reason = reason

    def pytest_report_header(self, config):
        return [f"ttmem: tracking is OFF, leak checks cannot run: {self.reason}"]

    def pytest_runtest_setup(self, item):
        if item.get_closest_marker(_MARKER) is None:
            pytest.fail(f"ttmem: leak check asked for, but tracking is off: {self.reason}",
                        pytrace=False)


class LeakChecker:
    """Per-test comparison of this process's live buffers (registered by pytest_configure)."""

    def __init__(self, include_cbs: bool):
        self.include_cbs = include_cbs
        self.baseline: Dict[str, set] = {}
        self.fixture_owned: set = set()

    def pytest_report_header(self, config):
        where = os.path.dirname(ttmem.segment_path() or "") or "the segment directory"
        return [f"ttmem: leak checks on (this process's segment in {where})"]

    def live(self) -> Dict[Key, dict]:
        return live_buffers(self.include_cbs)

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item):
        self.baseline[item.nodeid] = set(self.live())
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        if fixturedef.scope == "function":
            yield
            return
        before = set(self.live())
        yield
        self.fixture_owned |= set(self.live()) - before

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if call.when != "teardown":
            return
        baseline = self.baseline.pop(item.nodeid, None)
        if baseline is None or item.get_closest_marker(_MARKER) is not None:
            return
        live = self.live()
        self.fixture_owned &= set(live)  # forget what torn-down fixtures freed
        leaked = set(live) - baseline - self.fixture_owned
        if leaked:
            gc.collect()  # tensors only waiting for the cycle collector are not leaks
            live = self.live()
            leaked &= set(live)
        if not leaked:
            return
        rows = [live[k] for k in leaked]
        report.outcome = "failed"
        report.longrepr = describe(rows)
        report.ttmem_leaks = rows

    def pytest_report_teststatus(self, report, config):
        if report.when == "teardown" and getattr(report, "ttmem_leaks", None):
            return "failed", "L", "LEAKED"
        return None


class MemoryLimit:
    """limit_device_memory's arguments: bytes per kind, and the device (None: every device)."""

    def __init__(self, device: Optional[int] = None, **limits):
        unknown = sorted(set(limits) - set(_LIMIT_KINDS))
        if unknown:
            raise ValueError(f"{_LIMIT_MEMORY}: unknown argument(s) {', '.join(unknown)}; "
                             f"give device= and limits for {', '.join(_LIMIT_KINDS)}")
        if not limits:
            raise ValueError(f"{_LIMIT_MEMORY}: no limit given; give one or more of "
                             f"{', '.join(f'{k}=' for k in _LIMIT_KINDS)}")
        self.device = None if device is None else int(device)
        self.bytes = {_LIMIT_KINDS[k]: parse_size(v) for k, v in limits.items()}

    @classmethod
    def from_option(cls, text: str) -> "MemoryLimit":
        """From 'l1=1 MiB,dram=100 MiB,device=0'."""
        args = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--ttmem-limit-device-memory: {item!r} is not KIND=SIZE or "
                                 f"device=N (as 'l1=1 MiB,dram=100 MiB,device=0')")
            args[key.strip().lower()] = value.strip()
        return cls(**args)

    def overs(self, peaks: Dict[Tuple[int, str], int]) -> List[Tuple[int, str, int, int]]:
        """(device, kind, peak, limit) for each limit the peaks exceed."""
        return [(device, kind, peak, self.bytes[kind])
                for (device, kind), peak in sorted(peaks.items())
                if kind in self.bytes and peak > self.bytes[kind]
                and (self.device is None or device == self.device)]


class LeakLimit:
    """limit_device_leaks's arguments."""

    def __init__(self, max="0 B", warmups=0, device=None):  # noqa: A002 - pytest-memray's name
        self.max = parse_size(max)
        self.warmups = int(warmups)
        if self.warmups < 0:
            raise ValueError(f"{_LIMIT_LEAKS}: warmups must be 0 or more (got {warmups!r})")
        self.device = None if device is None else int(device)


def _over_memory_limit(overs, holders) -> str:
    lines = []
    for device, kind, peak, limit in overs:
        lines.append(f"ttmem: device {device} {kind} peaked at {_format_size(peak)}, over its "
                     f"limit of {_format_size(limit)} (reserved bytes of this process, all "
                     f"banks)")
        biggest = sorted((b for b in holders if b["device"] == device and b["kind"] == kind),
                         key=lambda b: -b["reserved_bytes"])
        if biggest:
            lines.append(f"largest {kind} buffers on device {device} when the test's call ended "
                         f"({len(biggest)} live):")
            lines.extend(_buffer_line(b) + f"  reserved {_format_size(b['reserved_bytes'])}"
                         for b in biggest[:10])
        else:
            lines.append(f"no {kind} buffer was live on device {device} when the test's call "
                         f"ended: the peak was passing")
    return "\n".join(lines)


class DeviceLimits:
    """The limit_device_memory and limit_device_leaks markers and their options."""

    def __init__(self, config):
        self.include_cbs = _flag(config, "ttmem_leaks_include_cbs", "ttmem_leaks_include_cbs")
        try:
            text = config.getoption("ttmem_limit_device_memory")
            self.memory = MemoryLimit.from_option(text) if text else None
            text = config.getoption("ttmem_limit_device_leaks")
            self.leaks = (LeakLimit(text, config.getoption("ttmem_leak_warmups"))
                          if text is not None else None)
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None

    def limits(self, item) -> Tuple[Optional[MemoryLimit], Optional[LeakLimit]]:
        """The test's limits: its markers', else the options'. ValueError for bad arguments."""
        memory, leaks = self.memory, self.leaks
        marker = item.get_closest_marker(_LIMIT_MEMORY)
        if marker is not None:
            if marker.args:
                raise ValueError(f"{_LIMIT_MEMORY} takes keyword arguments only, as "
                                 f"l1='1 MiB'")
            memory = MemoryLimit(**marker.kwargs)
        marker = item.get_closest_marker(_LIMIT_LEAKS)
        if marker is not None:
            leaks = LeakLimit(*marker.args, **marker.kwargs)
        return memory, leaks

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        try:
            memory, leaks = self.limits(item)
        except (TypeError, ValueError) as e:
            pytest.fail(f"ttmem: {e}", pytrace=False)
        item.ttmem_limits = (memory, leaks)
        if memory is not None or leaks is not None:
            reason = tracking_off_reason()
            if reason is not None:
                pytest.fail(f"ttmem: device memory limits asked for, but tracking is off: "
                            f"{reason}", pytrace=False)
        if memory is not None:
            ttmem.reset_peaks()  # before any fixture: their buffers count while live

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem):
        _, leaks = getattr(pyfuncitem, "ttmem_limits", (None, None))
        if leaks is not None:
            args = {name: pyfuncitem.funcargs[name]
                    for name in pyfuncitem._fixtureinfo.argnames}
            for _ in range(leaks.warmups):
                pyfuncitem.obj(**args)
            gc.collect()
            pyfuncitem.ttmem_before = set(live_buffers(self.include_cbs))
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        memory, leaks = getattr(item, "ttmem_limits", (None, None))
        if call.when != "call" or (memory is None and leaks is None):
            return
        failures = []
        if memory is not None:
            overs = memory.overs(ttmem.peaks())
            if overs:
                failures.append(_over_memory_limit(overs, live_buffers(False).values()))
        before = getattr(item, "ttmem_before", None)
        if leaks is not None and before is not None:
            gc.collect()  # tensors only waiting for the cycle collector are not leaks
            live = live_buffers(self.include_cbs)
            leaked = [b for k, b in live.items() if k not in before
                      and (leaks.device is None or b["device"] == leaks.device)]
            total = sum(b["reserved_bytes"] for b in leaked)
            if total > leaks.max:
                failures.append("\n".join(
                    [f"ttmem: the test leaked {_format_size(total)} reserved in {len(leaked)} "
                     f"buffer(s), over its limit of {_format_size(leaks.max)} (after "
                     f"{leaks.warmups} warmup run(s)):"]
                    + [_buffer_line(b) for b in sorted(leaked, key=lambda b: -b["size_bytes"])]))
        if failures:
            report.outcome = "failed"
            text = "\n".join(failures)
            report.longrepr = text if call.excinfo is None else f"{report.longrepr}\n{text}"

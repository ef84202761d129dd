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
"""

from __future__ import annotations

import gc
import os
from typing import Dict, Optional, Tuple

import pytest

import ttmem
from ttmem import _ttmem

_MARKER = "ttmem_allow_leaks"

Key = Tuple[int, str, int, int]


def pytest_addoption(parser):
    group = parser.getgroup("ttmem", "ttmem device-memory leak checks")
    group.addoption("--ttmem-leaks", action="store_true", default=None,
                    help="fail tests that leave device buffers allocated by this process")
    group.addoption("--ttmem-leaks-include-cbs", action="store_true", default=None,
                    help="count circular buffers left allocated as leaks too")
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


def describe(leaked) -> str:
    """The failure text: a headline, then one line per buffer (device, kind, size, tag)."""
    total = sum(b["reserved_bytes"] for b in leaked)
    lines = [f"ttmem: test left {len(leaked)} device buffer(s) allocated "
             f"({_format_size(total)} reserved):"]
    for b in sorted(leaked, key=lambda b: (b["device"], b["kind"], -b["size_bytes"])):
        lines.append(
            f"  device {b['device']} (chip {b['chip_id']})  {b['kind']:<8} "
            f"size {_format_size(b['size_bytes'])}  tag {b['tag'] or '-'}  "
            f"id {b['buffer_id']}  address {b['address']:#x}")
    lines.append(f"Free them in the test or its fixtures, or mark the test "
                 f"@pytest.mark.{_MARKER} if they are meant to outlive it.")
    return "\n".join(lines)


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
        path = ttmem.segment_path()
        if path is None:  # nothing reported yet (or tracking is off): nothing can leak
            return {}
        rows = _ttmem.buffers(os.path.dirname(path), pid=os.getpid(), reap=False)
        return {(b["device"], b["kind"], b["buffer_id"], b["time_ns"]): b for b in rows
                if self.include_cbs or b["kind"] != "CB"}

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

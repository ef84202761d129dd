"""The leak plugin, run by pytester on test files written for each case, each run in a process
of its own (the client keeps one segment per process)."""

import pytest

PREAMBLE = '''
import pytest
import ttmem

ttmem.register_device(0, chip_id=0xBEEF, board="plugin-test")

def alloc(buffer_id, size=4096, kind="DRAM", tag=None):
    ttmem.alloc(0, buffer_id, kind, 0x1000 * buffer_id, size, page_size=2048, tag=tag)
'''


@pytest.fixture
def run(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("TTMEM_DIR", str(tmp_path / "segments"))

    def run_file(body, *args, preamble=PREAMBLE):
        pytester.makepyfile(test_cases=preamble + body)
        return pytester.runpytest_subprocess("-p", "ttmem.pytest_plugin", *args)

    return run_file


def test_a_leaking_test_fails_and_lists_each_buffer(run):
    result = run('''
def test_clean():
    alloc(1)
    ttmem.free(0, 1)

def test_leaky():
    with ttmem.op("ttnn::linear"):
        alloc(2, size=1 << 20)
    alloc(3, size=2048, kind="L1", tag="kv_cache")

def test_after():
    pass
''', "--ttmem-leaks", "-v")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*test_leaky LEAKED*",
        "*ttmem: test left 2 device buffer(s) allocated*",
        "*device 0 (chip 0xbeef)  DRAM*size 1.00 MiB  tag ttnn::linear  id 2*",
        "*device 0 (chip 0xbeef)  L1*size 2.00 KiB  tag kv_cache  id 3*",
        "*LEAKED test_cases.py::test_leaky*",
    ])
    assert "test_clean LEAKED" not in result.stdout.str()
    assert "test_after LEAKED" not in result.stdout.str()


def test_without_the_option_nothing_is_checked(run):
    result = run('''
def test_leaky():
    alloc(1)
''')
    result.assert_outcomes(passed=1)


def test_the_ini_option_turns_it_on(run, pytester):
    pytester.makeini("[pytest]\nttmem_leaks = true\n")
    result = run('''
def test_leaky():
    alloc(1)
''')
    result.assert_outcomes(passed=1, failed=1)


def test_marker_allows_intended_leaks(run):
    result = run('''
@pytest.mark.ttmem_allow_leaks
def test_keeps_a_cache():
    alloc(1)

def test_next_is_judged_on_its_own():
    alloc(2)
    ttmem.free(0, 2)
''', "--ttmem-leaks", "--strict-markers")
    result.assert_outcomes(passed=2)


def test_wider_scoped_fixtures_own_their_buffers(run):
    result = run('''
@pytest.fixture(scope="module")
def weights():
    alloc(1, size=1 << 24, tag="weights")
    yield 1
    ttmem.free(0, 1)

@pytest.fixture
def activations():
    alloc(2)
    yield 2
    ttmem.free(0, 2)

@pytest.fixture
def forgetful():
    alloc(3, tag="forgotten")
    yield 3

def test_one(weights, activations):
    pass

def test_two(weights):
    pass

def test_forgetful_fixture(forgetful):
    pass
''', "--ttmem-leaks", "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_forgetful_fixture LEAKED*", "*tag forgotten  id 3*"])
    assert "test_one LEAKED" not in result.stdout.str()


def test_garbage_waiting_for_the_collector_is_not_a_leak(run):
    result = run('''
import gc

class Tensor:
    def __init__(self, buffer_id):
        self.buffer_id = buffer_id
        self.me = self  # a cycle: freed only by the cycle collector
        alloc(buffer_id)
    def __del__(self):
        ttmem.free(0, self.buffer_id)

def test_cycle():
    gc.disable()
    Tensor(1)
''', "--ttmem-leaks")
    result.assert_outcomes(passed=1)


def test_circular_buffers_count_only_when_asked(run):
    body = '''
def test_program_cbs():
    ttmem.cb_alloc(0, [(0, 0, 7, 7)], 102400, 4096, program_id=1)
'''
    run(body, "--ttmem-leaks").assert_outcomes(passed=1)
    result = run(body, "--ttmem-leaks", "--ttmem-leaks-include-cbs")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*CB*size 4.00 KiB*"])


def test_a_process_that_reports_nothing_passes(run):
    # The plugin starts tracking at the session's start (its header says whether it works), so
    # the process has a segment, empty.
    result = run('''
import ttmem

def test_nothing():
    assert ttmem.segment_path() is not None
    assert ttmem.buffers(pid=__import__("os").getpid()) == []
''', "--ttmem-leaks", preamble="")
    result.assert_outcomes(passed=1)


@pytest.fixture
def tracking_off(tmp_path, monkeypatch):
    """A file where the segment directory should be: the client cannot start tracking."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("TTMEM_DIR", str(blocker / "segments"))


def test_tracking_that_cannot_start_errors_the_checked_tests(pytester, tracking_off):
    pytester.makepyfile(test_cases='''
import pytest

def test_would_leak():
    pass

@pytest.mark.ttmem_allow_leaks
def test_exempt():
    pass
''')
    result = pytester.runpytest_subprocess("-p", "ttmem.pytest_plugin", "--ttmem-leaks")
    result.stdout.fnmatch_lines(["ttmem: tracking is OFF, leak checks cannot run: *TTMEM_DIR*"])
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*leak check asked for, but tracking is off*"])
    assert result.ret == 1


def test_header_says_where_the_checks_read(run):
    result = run('''
def test_clean():
    alloc(1)
    ttmem.free(0, 1)
''', "--ttmem-leaks")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ttmem: leak checks on (this process's segment in *segments)"])


# --- limit_device_memory and limit_device_leaks ---------------------------------------------------

def test_memory_limit_fails_a_test_that_peaks_above_it_and_names_the_holders(run):
    result = run('''
@pytest.mark.limit_device_memory(l1="1 MiB", dram="100 MiB", device=0)
def test_within():
    alloc(1, size=1 << 20)
    ttmem.free(0, 1)

@pytest.mark.limit_device_memory(dram="1 MiB")
def test_passing_peak():
    alloc(2, size=4 << 20, tag="big")
    ttmem.free(0, 2)

@pytest.mark.limit_device_memory(l1="64 KiB", device=0)
def test_holds_l1():
    alloc(3, size=1 << 20, kind="L1", tag="kv_cache")
    alloc(4, size=2048, kind="L1", tag="small")

@pytest.mark.limit_device_memory(l1="64 KiB", device=1)
def test_other_device_is_not_limited():
    alloc(5, size=1 << 20, kind="L1")

def test_unmarked():
    alloc(6, size=64 << 20)
''', "-v", "--strict-markers")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([
        "*test_passing_peak FAILED*",
        "*test_holds_l1 FAILED*",
    ])
    result.stdout.fnmatch_lines([
        "*ttmem: device 0 DRAM peaked at 4.* MiB, over its limit of 1.00 MiB*",
        "*no DRAM buffer was live on device 0 when the test's call ended: the peak was passing*",
    ])
    result.stdout.fnmatch_lines([
        "*ttmem: device 0 L1 peaked at *, over its limit of 64.00 KiB*",
        "*largest L1 buffers on device 0 when the test's call ended (2 live):*",
        "*L1*size 1.00 MiB  tag kv_cache  id 3*",
        "*L1*size 2.00 KiB  tag small  id 4*",
    ])


def test_memory_limit_option_applies_to_every_test_and_markers_win(run):
    body = '''
def test_big():
    alloc(1, size=4 << 20)
    ttmem.free(0, 1)

@pytest.mark.limit_device_memory(dram="8 MiB")
def test_big_but_allowed():
    alloc(2, size=4 << 20)
    ttmem.free(0, 2)
'''
    result = run(body, "--ttmem-limit-device-memory", "dram=1 MiB,device=0", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_big FAILED*", "*over its limit of 1.00 MiB*"])
    run(body).assert_outcomes(passed=2)
    bad = run(body, "--ttmem-limit-device-memory", "hbm=1 MiB")
    assert bad.ret == 4  # a usage error
    bad.stderr.fnmatch_lines(["*unknown argument(s) hbm; give device= and limits for dram, l1*"])


def test_memory_limit_with_bad_arguments_errors_the_test(run):
    result = run('''
@pytest.mark.limit_device_memory(dram="lots")
def test_bad_size():
    pass

@pytest.mark.limit_device_memory(hbm="1 MiB")
def test_bad_kind():
    pass
''')
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*'lots' is not a size*"])
    result.stdout.fnmatch_lines(["*unknown argument(s) hbm*"])


LEAKY = '''
import itertools

cache = set()
ids = itertools.count(100)

def cached(key):
    """Allocates on the first call for a key only, as a program or weight cache does."""
    if key not in cache:
        cache.add(key)
        alloc(next(ids), tag=f"cache {key}")
'''


def test_leak_limit_with_warmups_passes_code_that_caches_on_its_first_runs(run):
    result = run(LEAKY + '''
@pytest.mark.limit_device_leaks(max="0 B", warmups=1)
def test_caches_on_first_run():
    cached("a")

@pytest.mark.limit_device_leaks(max="0 B")
def test_cache_without_warmup():
    cached("b")

runs = []

@pytest.mark.limit_device_leaks(max="0 B", warmups=2)
def test_leaks_every_run():
    runs.append(1)
    alloc(next(ids), tag="grows")

def test_the_body_ran_warmups_plus_one_times():
    assert len(runs) == 3

@pytest.mark.limit_device_leaks(max="32 KiB")
def test_small_leak_within_max():
    alloc(next(ids))
''', "-v", "--strict-markers")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([
        "*test_cache_without_warmup FAILED*",
        "*test_leaks_every_run FAILED*",
    ])
    result.stdout.fnmatch_lines([
        "*ttmem: the test leaked 24.00 KiB reserved in 1 buffer(s), over its limit of 0 B "
        "(after 0 warmup run(s)):*",
        "*DRAM*tag cache b*",
    ])
    result.stdout.fnmatch_lines(["*(after 2 warmup run(s))*", "*tag grows*"])


def test_leak_limit_option_applies_to_every_test(run):
    body = LEAKY + '''
def test_caches():
    cached("a")
'''
    run(body, "--ttmem-limit-device-leaks", "0 B", "--ttmem-leak-warmups", "1").assert_outcomes(
        passed=1)
    run(body, "--ttmem-limit-device-leaks", "0 B").assert_outcomes(failed=1)


def test_limits_error_when_tracking_is_off(pytester, tracking_off):
    pytester.makepyfile(test_cases='''
import pytest

@pytest.mark.limit_device_memory(dram="1 MiB")
def test_memory():
    pass

@pytest.mark.limit_device_leaks(max="0 B")
def test_leaks():
    pass

def test_unlimited():
    pass
''')
    result = pytester.runpytest_subprocess("-p", "ttmem.pytest_plugin")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        ["*device memory limits asked for, but tracking is off: *TTMEM_DIR*"])
    assert result.ret == 1

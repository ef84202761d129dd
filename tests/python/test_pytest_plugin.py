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


def test_tracking_that_cannot_start_errors_the_checked_tests(pytester, tmp_path, monkeypatch):
    # A file where the segment directory should be: the client cannot start tracking.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("TTMEM_DIR", str(blocker / "segments"))
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

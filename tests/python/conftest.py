"""Fixtures for the Python tests: a running workload (the simulator when `ttmem sim` is built,
else ttmem_testload) in a segment directory of its own, and the paths of the test programs."""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

pytest_plugins = ["pytester"]

# The client library reads TTMEM_DIR once, at this process's first report: point it at a
# directory of its own before any test can report.
OWN_DIR = tempfile.mkdtemp(prefix="ttmem-pytest-")
os.environ["TTMEM_DIR"] = OWN_DIR
os.environ.pop("TTMEM_DISABLE", None)


def pytest_unconfigure(config):
    shutil.rmtree(OWN_DIR, ignore_errors=True)


def _program(var):
    path = os.environ.get(var)
    if not path or not os.access(path, os.X_OK):
        pytest.skip(f"{var} is not set to a built program (run through ctest)")
    return path


@pytest.fixture(scope="session")
def cli():
    return _program("TTMEM_CLI")


@pytest.fixture(scope="session")
def testload():
    return _program("TTMEM_TESTLOAD")


def cli_json(cli, directory, *args):
    out = subprocess.run([cli, "--dir", directory, *args, "--json"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return json.loads(out)


def _sim_usable(cli):
    probe = subprocess.run([cli, "sim", "--help"], capture_output=True, text=True, timeout=30)
    return probe.returncode == 0 and "--hold" in probe.stdout


class Workload:
    """A tracked process holding device buffers in `dir` until stopped."""

    def __init__(self, kind, proc, directory, truth=None):
        self.kind, self.proc, self.dir, self.truth = kind, proc, directory, truth

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, how="free"):
        if self.proc.poll() is None:
            if self.kind == "testload":
                self.proc.communicate(f"{how}\n", timeout=60)
            else:
                self.proc.kill()
                self.proc.wait(timeout=60)


def _wait_stable(directory, pid, proc, timeout=120):
    """Waits until the process's buffer count stops changing (the simulator holds its state)."""
    import ttmem
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the simulator exited before holding its state"
        count = len(ttmem.buffers(dir=directory, pid=pid))
        if count and count == last:
            return
        last = count
        time.sleep(0.5)
    pytest.fail("the simulator's state did not settle")


@pytest.fixture
def workload(tmp_path, cli, testload):
    """The 8-chip Llama decode simulation, held up, when `ttmem sim` exists; otherwise
    ttmem_testload with 8 devices, 4 threads and a ground-truth file."""
    directory = str(tmp_path / "segments")
    env = dict(os.environ, TTMEM_DIR=directory)
    if _sim_usable(cli):
        proc = subprocess.Popen([cli, "--dir", directory, "sim", "llama-decode", "--speed", "0",
                                 "--hold", "300"], env=env, stdout=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, text=True)
        _wait_stable(directory, proc.pid, proc)
        w = Workload("sim", proc, directory)
    else:
        truth = str(tmp_path / "truth")
        proc = subprocess.Popen([testload, "--devices", "8", "--threads", "4", "--ops", "1500",
                                 "--seed", "7", "--truth", truth], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for line in proc.stdout:
            if line.strip() == "done":
                break
        else:
            pytest.fail("ttmem_testload ended before it was done")
        with open(truth + ".1.json") as f:
            w = Workload("testload", proc, directory, json.load(f))
    yield w
    w.stop()

"""An interrupted runner passes SIGINT on to its run at once, from a warm host
(``harness.runs.warm``) as from a fresh worker (``harness.runs.launch``): no wait first to
see whether a terminal's Ctrl-C got there already. The worker takes the second SIGINT such a
Ctrl-C brings as the same stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from interrupted import busy_core

from harness.runs import launch, warm

#: Preloaded by the host: its children run this instead of a run, to see the signal.
PROBE = '''
import os
import signal
import time

from harness.runs import launch, worker


def main(argv):
    launch.worker_signals()
    folder = argv[0]
    try:
        with open(os.path.join(folder, "ready"), "w") as fifo:  # the test waits on it
            fifo.write("ready\\n")
        while True:
            signal.pause()
    except KeyboardInterrupt:
        with open(os.path.join(folder, "got"), "w") as fh:
            fh.write(repr(time.monotonic()))
        return 130


worker.main = main
'''


class Stop(BaseException):
    """What the test raises in its main thread, as a Ctrl-C raises KeyboardInterrupt."""


@pytest.fixture
def busy():
    with busy_core():
        yield


def test_the_warm_host_passes_sigint_on_at_once(tmp_path, monkeypatch, busy):
    (tmp_path / "warm_probe.py").write_text(textwrap.dedent(PROBE))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    os.mkfifo(tmp_path / "ready")
    events: list[tuple] = []
    kill, read = os.kill, warm.Host._read

    def spy_kill(pid, signum):
        events.append(("kill", signal.Signals(signum).name))
        kill(pid, signum)

    def spy_read(self, timeout=None):
        events.append(("wait", timeout))
        return read(self, timeout)

    def interrupt(signum, frame):
        events.clear()  # what happens from the interruption on
        raise Stop

    host = warm.Host(["warm_probe"])
    try:
        main = threading.main_thread().ident

        def when_ready():
            with open(tmp_path / "ready") as fifo:  # opens once the child writes it
                assert fifo.read().strip() == "ready"
            when_ready.at = time.monotonic()
            signal.pthread_kill(main, signal.SIGINT)

        previous = signal.signal(signal.SIGINT, interrupt)
        monkeypatch.setattr(warm.os, "kill", spy_kill)
        monkeypatch.setattr(warm.Host, "_read", spy_read)
        try:
            waiter = threading.Thread(target=when_ready)
            waiter.start()
            with pytest.raises(Stop):
                host.run(tmp_path)
            waiter.join()
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        host.close()
    # the signal went to the child before any wait, and the child stopped on it
    assert events[0] == ("kill", "SIGINT"), events
    assert events[1] == ("wait", 30.0)
    assert ("kill", "SIGKILL") not in events
    got = float((tmp_path / "got").read_text())
    print(f"SIGINT reached the child {1000 * (got - when_ready.at):.1f} ms after the "
          "runner's interruption (one core kept busy)")


def test_a_fresh_worker_gets_sigint_at_once(monkeypatch):
    proc = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    calls = []
    send, wait = proc.send_signal, proc.wait
    monkeypatch.setattr(proc, "send_signal", lambda s: (calls.append(("send", s)), send(s)))
    monkeypatch.setattr(proc, "wait", lambda timeout=None: (calls.append(("wait", timeout)),
                                                            wait(timeout))[1])
    launch.stop(proc, grace=30.0)
    assert calls[:2] == [("send", signal.SIGINT), ("wait", 30.0)]
    assert proc.returncode == -signal.SIGINT  # the signal reached it


def test_a_second_signal_right_after_the_first_is_the_same_stop():
    handler = launch._FirstStop()
    with pytest.raises(KeyboardInterrupt) as first:
        handler(signal.SIGINT, None)
    assert type(first.value) is KeyboardInterrupt
    handler(signal.SIGINT, None)  # the terminal's and the launcher's copy of one Ctrl-C
    handler(signal.SIGTERM, None)
    handler.at -= launch.REPEAT  # later, a new signal stops again
    with pytest.raises(KeyboardInterrupt) as again:
        handler(signal.SIGTERM, None)
    assert getattr(again.value, "signum", None) == signal.SIGTERM

#!/usr/bin/env python3
"""pty_driver.py: runs a command on a pseudo-terminal and plays a script.

usage: pty_driver.py STEPS.json RESULT.json -- COMMAND [ARGS...]

STEPS.json is a list of steps, run in order:
  {"send": "text"}                 write keys ("\\x03" is Ctrl-C, "\\x04" Ctrl-D, "\\t" Tab)
  {"expect": "regex", "timeout": 5} wait until the output (escape sequences
                                    and \\r removed) matches after the last match
  {"sleep": 0.2}                   pause
  {"exit": 5}                      wait for the command to exit
RESULT.json receives {"ok", "error", "step", "exit", "transcript"}.
Every wait is bounded; the child is killed at the end if still running.
"""
import json
import os
import pty
import re
import select
import signal
import sys
import time

ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r|\x07")


class Session:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        self.raw = b""
        self.pos = 0
        self.status = None

    def clean(self):
        return ESCAPES.sub(b"", self.raw).decode("utf-8", "replace")

    def pump(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            return False
        self.raw += data
        return True

    def expect(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.S)
        while True:
            m = regex.search(self.clean(), self.pos)
            if m:
                self.pos = m.end()
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not self.pump(min(left, 0.1)) and self.reap():
                m = regex.search(self.clean(), self.pos)
                if m:
                    self.pos = m.end()
                    return True
                return False

    def reap(self):
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status is not None

    def wait_exit(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.reap():
                return True
            self.pump(0.05)
        return False

    def kill(self):
        if not self.reap():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def play(session, steps):
    for i, step in enumerate(steps):
        if "send" in step:
            os.write(session.fd, step["send"].encode())
        elif "expect" in step:
            if not session.expect(step["expect"], step.get("timeout", 5)):
                return i, "output never matched %r" % step["expect"]
        elif "sleep" in step:
            end = time.monotonic() + step["sleep"]
            while time.monotonic() < end:
                session.pump(end - time.monotonic())
        elif "exit" in step:
            if not session.wait_exit(step["exit"]):
                return i, "command did not exit within %ss" % step["exit"]
    return None, None


def main():
    steps_path, result_path = sys.argv[1], sys.argv[2]
    argv = sys.argv[sys.argv.index("--") + 1:]
    with open(steps_path) as f:
        steps = json.load(f)
    session = Session(argv)
    try:
        step, error = play(session, steps)
    finally:
        session.pump(0.05)
        session.kill()
    result = {"ok": error is None, "error": error, "step": step,
              "exit": session.status, "transcript": session.clean()}
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())

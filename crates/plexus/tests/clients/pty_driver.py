#!/usr/bin/env python3
"""Drives a terminal program through a pseudo-terminal, as a person at a keyboard.

    pty_driver.py STEPS_JSON -- COMMAND ARGS...

STEPS_JSON is a list of [type, expect] pairs: wait for the prompt `plexus> `, type
`type` (a tab in it is the Tab key) and Enter, then wait until `expect` appears in
what the program printed. Every wait is bounded (20 s); the program must then exit
by itself. Prints everything the program wrote; exits 1 with the reason when a wait
times out. Standard library only (Linux, macOS).
"""

import json
import os
import pty
import select
import sys
import time

PATIENCE = 20.0
PROMPT = b"plexus> "


def main():
    steps = json.loads(sys.argv[1])
    command = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    seen = bytearray()
    read_to = 0

    def until(needle):
        """Reads until `needle` appears after what was already matched."""
        nonlocal read_to
        end = time.monotonic() + PATIENCE
        while True:
            at = seen.find(needle, read_to)
            if at >= 0:
                read_to = at + len(needle)
                return
            left = end - time.monotonic()
            if left <= 0:
                sys.stdout.buffer.write(bytes(seen))
                sys.exit(f"timed out waiting for {needle!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    sys.stdout.buffer.write(bytes(seen))
                    sys.exit(f"the program ended before {needle!r}")
                seen.extend(chunk)

    for typed, expect in steps:
        until(PROMPT)
        os.write(fd, typed.encode() + b"\r")
        if expect:
            until(expect.encode())
    end = time.monotonic() + PATIENCE
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            sys.stdout.buffer.write(bytes(seen))
            sys.exit(os.waitstatus_to_exitcode(status))
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen.extend(os.read(fd, 4096))
            except OSError:
                pass
    sys.stdout.buffer.write(bytes(seen))
    sys.exit("the program did not exit")


if __name__ == "__main__":
    main()

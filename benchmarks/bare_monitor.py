"""Run a program under the cheapest sys.monitoring coverage (3.12+), to price the mechanism.

    python benchmarks/bare_monitor.py PROGRAM ARGS

PY_START turns LINE on for each code object once; every callback returns DISABLE. No
recording, no filtering, no probe: what is left is sys.monitoring's own cost.
"""

import sys

mon = sys.monitoring
TOOL = 3


def on_start(code, offset):
    mon.set_local_events(TOOL, code, mon.events.LINE)
    return mon.DISABLE


def on_line(code, line):
    return mon.DISABLE


def main() -> None:
    path = sys.argv[1]
    sys.argv = sys.argv[1:]
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    mon.use_tool_id(TOOL, "bare")
    mon.register_callback(TOOL, mon.events.PY_START, on_start)
    mon.register_callback(TOOL, mon.events.LINE, on_line)
    mon.set_events(TOOL, mon.events.PY_START)
    exec(code, {"__name__": "__main__", "__file__": path})


main()

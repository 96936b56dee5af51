#!/usr/bin/env python3
"""Runs each end-to-end bench program briefly and checks that it measured something.

Not a benchmark: no figure is judged (budgets live in budgets.json, for tools/bench). It fails
when a program exits non-zero, prints no JSON report, or reports an error, so that a change
that breaks a scenario (a server it can no longer start, an agent that cannot attest) shows in
the test suite and not only at the next bench run.

  check_scenarios_run.py PROGRAM [ARG...] [-- PROGRAM [ARG...]]...
"""
import json
import subprocess
import sys


def check(argv):
    run = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    name = argv[0].rsplit("/", 1)[-1]
    if run.returncode != 0:
        return f"{name} exited {run.returncode}:\n{run.stderr[-3000:]}"
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError as e:
        return f"{name} printed no JSON report ({e}):\n{run.stdout[-2000:]}"
    if report.get("errors"):
        return f"{name} reported errors: {report['errors']}\n{run.stderr[-3000:]}"
    if not report.get("metrics"):
        return f"{name} reported no metric"
    print(f"{name}: {len(report['metrics'])} metrics, no error")
    return None


def main():
    commands, current = [], []
    for arg in sys.argv[1:]:
        if arg == "--":
            commands.append(current)
            current = []
        else:
            current.append(arg)
    if current:
        commands.append(current)
    failures = [f for f in (check(c) for c in commands) if f]
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

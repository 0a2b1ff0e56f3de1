#!/usr/bin/env python3
"""Helpers for bench/run.sh (standard library only).

  benchlib.py calls SIM_URL           total list calls the simulator has served
  benchlib.py check                   reads a GraphQL response on stdin; prints the number of
                                      connections in it, or fails when it has errors or no data
  benchlib.py oha OHA_JSON            prints "rps p50_ms p99_ms errors requests"
  benchlib.py rss PID                 the process's peak resident set (VmHWM), MiB
"""
import json
import sys
import urllib.request


def calls(sim_url):
    with urllib.request.urlopen(sim_url.rstrip("/") + "/__sim/stats", timeout=5) as r:
        print(json.load(r)["calls"])


def check():
    raw = sys.stdin.read()
    try:
        doc = json.loads(raw)
    except ValueError:
        sys.exit(f"not JSON: {raw[:200]!r}")
    if doc.get("errors"):
        sys.exit(f"GraphQL errors: {json.dumps(doc['errors'])[:300]}")
    data = doc.get("data") or {}
    if not data or any(not isinstance(v, list) for v in data.values()):
        sys.exit(f"no lists in data: {raw[:200]!r}")
    print(sum(len(v) for v in data.values()))


def oha(path):
    with open(path) as fh:
        doc = json.load(fh)
    summary = doc.get("summary", {})
    lat = doc.get("latencyPercentiles", {})
    codes = doc.get("statusCodeDistribution", {}) or {}
    transport = sum(int(n) for n in (doc.get("errorDistribution", {}) or {}).values())
    ok = sum(int(n) for c, n in codes.items() if 200 <= int(c) < 300)
    bad = sum(int(n) for c, n in codes.items() if not 200 <= int(c) < 300)
    total = summary.get("total") or 0.0
    requests = ok + bad
    rps = requests / total if total else 0.0
    p50 = (lat.get("p50") or 0.0) * 1000.0
    p99 = (lat.get("p99") or 0.0) * 1000.0
    print(f"{rps:.1f} {p50:.2f} {p99:.2f} {bad + transport} {requests}")


def rss(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                print(f"{int(line.split()[1]) / 1024:.1f}")
                return
    print("nan")


def main(argv):
    cmds = {"calls": (calls, 1), "check": (check, 0), "oha": (oha, 1), "rss": (rss, 1)}
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        sys.exit(__doc__)
    fn, _ = cmds[argv[1]]
    fn(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)

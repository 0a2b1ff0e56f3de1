#!/usr/bin/env python3
"""Load for bench/hostile.sh, loopback only, bounded in time and sockets.

  hostile.py normal HOST PORT SECONDS CLIENTS RATE KEY_PREFIX OUT.json
      CLIENTS keep-alive HTTP/1.1 clients, each with its own API key (KEY_PREFIX + index),
      each sending RATE GraphQL requests a second; writes latencies and errors.
  hostile.py sockets HOST PORT SECONDS SLOW FLOOD OUT.json
      SLOW slowloris sockets (a header line a second, never finished) and FLOOD sockets opened
      and held without a byte (reopened when the server closes them); writes what they saw.
  hostile.py noisy HOST PORT SECONDS KEY OUT.json
      one caller sending as fast as it can with KEY, on one keep-alive connection; writes
      its answers by status.
"""

import asyncio
import json
import sys
import time

QUERY = json.dumps({"query": "{ a: connections(projectId: \"hostile-a\") { name state } }"}).encode()


def request(host, port, key):
    return (
        f"POST /graphql HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(QUERY)}\r\n\r\n"
    ).encode() + QUERY


async def exchange(reader, writer, payload):
    """One request on an open connection: (status, body)."""
    writer.write(payload)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length)
    return status, body


async def normal_client(host, port, seconds, rate, key, result):
    payload = request(host, port, key)
    end = time.monotonic() + seconds
    conn = None
    next_at = time.monotonic()
    while time.monotonic() < end:
        next_at += 1.0 / rate
        started = time.monotonic()
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
            status, body = await asyncio.wait_for(exchange(*conn, payload), 30)
            elapsed = time.monotonic() - started
            ok = status == 200 and b'"errors"' not in body
            result["latencies"].append(elapsed)
            if not ok:
                key_ = f"http {status}" if status != 200 else "graphql error"
                result["errors"][key_] = result["errors"].get(key_, 0) + 1
        except Exception as e:  # noqa: BLE001 - every failure is counted, by kind
            result["errors"][type(e).__name__] = result["errors"].get(type(e).__name__, 0) + 1
            if conn is not None:
                conn[1].close()
            conn = None
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    if conn is not None:
        conn[1].close()


async def run_normal(host, port, seconds, clients, rate, prefix, out):
    result = {"latencies": [], "errors": {}}
    await asyncio.gather(
        *(normal_client(host, port, seconds, rate, f"{prefix}{i}", result) for i in range(clients))
    )
    lat = sorted(result["latencies"])
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else None  # noqa: E731
    summary = {
        "requests": len(lat) + sum(result["errors"].values()),
        "ok_or_answered": len(lat),
        "errors": result["errors"],
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": lat[-1] * 1000 if lat else None,
    }
    json.dump(summary, open(out, "w"))


async def slowloris(host, port, end, stats):
    while time.monotonic() < end:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"POST /graphql HTTP/1.1\r\nHost: {host}\r\n".encode())
            stats["slow_opened"] += 1
            i = 0
            while time.monotonic() < end:
                await asyncio.sleep(1)
                writer.write(f"X-Slow-{i}: y\r\n".encode())
                await writer.drain()
                i += 1
                if reader.at_eof():
                    break
        except Exception:  # noqa: BLE001 - closed by the server
            pass
        stats["slow_cut"] += 1
        await asyncio.sleep(0.2)


async def flooder(host, port, end, stats):
    while time.monotonic() < end:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            stats["flood_opened"] += 1
            # Hold it without a byte until the server closes it.
            data = await asyncio.wait_for(reader.read(1), max(0.1, end - time.monotonic()))
            if not data:
                stats["flood_closed_by_server"] += 1
            writer.close()
        except asyncio.TimeoutError:
            pass
        except Exception:  # noqa: BLE001 - refused or reset
            stats["flood_closed_by_server"] += 1
        # Reopen soon, not in a tight loop: the attacker's own CPU is the machine's too.
        await asyncio.sleep(0.5)


async def noisy(host, port, end, key, stats):
    payload = request(host, port, key)
    conn = None
    while time.monotonic() < end:
        try:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            status, _ = await exchange(*conn, payload)
            stats[f"noisy_{status}"] = stats.get(f"noisy_{status}", 0) + 1
        except Exception:  # noqa: BLE001 - count and reconnect
            stats["noisy_failed"] = stats.get("noisy_failed", 0) + 1
            conn = None
            await asyncio.sleep(0.05)


async def run_sockets(host, port, seconds, slow, flood, out):
    end = time.monotonic() + seconds
    stats = {"slow_opened": 0, "slow_cut": 0, "flood_opened": 0, "flood_closed_by_server": 0}
    tasks = [slowloris(host, port, end, stats) for _ in range(slow)]
    tasks += [flooder(host, port, end, stats) for _ in range(flood)]
    await asyncio.gather(*tasks)
    json.dump(stats, open(out, "w"))


async def run_noisy(host, port, seconds, key, out):
    stats = {}
    await noisy(host, port, time.monotonic() + seconds, key, stats)
    json.dump(stats, open(out, "w"))


def main():
    mode, host, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    if mode == "normal":
        clients, rate, prefix, out = int(sys.argv[5]), float(sys.argv[6]), sys.argv[7], sys.argv[8]
        asyncio.run(run_normal(host, port, seconds, clients, rate, prefix, out))
    elif mode == "sockets":
        slow, flood, out = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
        asyncio.run(run_sockets(host, port, seconds, slow, flood, out))
    elif mode == "noisy":
        key, out = sys.argv[5], sys.argv[6]
        asyncio.run(run_noisy(host, port, seconds, key, out))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

"""Serve under load, on loopback: many small scans, with and without a client sending heavy requests alongside.

A ``python -m fakescope.cli serve --port 0`` subprocess (every bundled model unless ``--model``) takes ``--clients``
concurrent clients, each posting one 32x32 JPEG (a bundled sample) to ``/api/scan`` and posting again as soon as
the answer comes, for ``--seconds`` per phase:

- ``quiet``: the small clients alone;
- ``heavy-refused``: plus one client sending, back to back, the request that stalled the old server: forty 1-bit
  7000x7000 PNGs (~240 KB; 1.96 billion pixels to decode), which the pixel budget refuses from the headers (413);
- ``heavy-admitted``: plus one client sending, back to back, as many 7000x7000 PNGs as the budget admits (two
  by default: 98 million pixels), which the server really decodes (in its low-priority worker process).

Reported per phase: small-request latency p50/p99, requests/s, server errors (5xx), other statuses, the heavy
requests' statuses and latency, and the server's memory (RSS of the server and its workers, sampled). The goal:
0 server errors, and small-request p99 under heavy load within 2x of the quiet p99 of the same run.

    python benchmarks/bench_serve.py                      # 3 phases x 60 s → benchmarks/results/serve.json
    python benchmarks/bench_serve.py --seconds 3 --clients 4 --out /tmp/serve.json   # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from fakescope.io import write_json
from fakescope.scanning.demo import samples_dir

PHASES = ("quiet", "heavy-refused", "heavy-admitted")


def heavy_png(side: int) -> bytes:
    """A 1-bit side x side PNG: a few KB that decode to side² pixels (a stripe so it is not all one colour)."""
    im = Image.new("1", (side, side))
    im.paste(1, (0, 0, side, side // 7))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _rss_kb(pid: int) -> int:
    try:
        m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the decode workers), in KiB; 0 once it is gone."""
    return sum(_rss_kb(p) for p in [pid, *_children(pid)])


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live children (the decode workers)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in os.listdir(f"/proc/{pid}/task")
                for c in Path(f"/proc/{pid}/task/{t}/children").read_text().split()]
    except OSError:
        return []


class Server:
    """The server subprocess: started on a free loopback port (read from its banner), stopped with SIGINT."""

    def __init__(self, models: list[str], log: Path) -> None:
        args = [sys.executable, "-m", "fakescope.cli", "serve", "--port", "0", "--log-level", "warning"]
        for m in models:
            args += ["--model", m]
        self.log = log
        self._fh = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._fh)
        self.url = self._wait_banner()

    def _wait_banner(self) -> str:
        end = time.monotonic() + 300
        while time.monotonic() < end:
            text = self.log.read_text()
            m = re.search(r"web app on (http://127\.0\.0\.1:\d+)/", text)
            if m:
                try:
                    if httpx.get(f"{m.group(1)}/api/health", timeout=5).status_code == 200:
                        return m.group(1)
                except httpx.HTTPError:
                    pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {text}")
            time.sleep(0.1)
        raise RuntimeError("server did not start in 300 s")

    def stop(self) -> str:
        self.proc.send_signal(2)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._fh.close()
        return self.log.read_text()


class Memory(threading.Thread):
    """Samples the server's RSS every 0.25 s; ``mark(name)`` records the phase boundaries."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.marks, self.stop = pid, [], {}, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), rss_kb(self.pid)))
            time.sleep(0.25)

    def peak_mb(self, t0: float, t1: float) -> float:
        vals = [kb for t, kb in self.samples if t0 <= t <= t1]
        return round(max(vals, default=0) / 1024, 1)


def post_request(url: str, files: list[tuple[str, bytes, str]]) -> bytes:
    """The whole HTTP/1.1 request (keep-alive) posting ``files`` to ``/api/scan``, encoded once (by httpx)."""
    req = httpx.Request("POST", f"{url}/api/scan", files=[("files", f) for f in files])
    body = req.read()
    host = url.split("//", 1)[1]
    head = (f"POST /api/scan HTTP/1.1\r\nHost: {host}\r\nContent-Type: {req.headers['content-type']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bool]:
    """Send one request, read its whole response: its status code, and whether the server closes the connection."""
    writer.write(request)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length, close = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode("latin-1").partition(":")
        if key.lower() == "content-length":
            length = int(value)
        close = close or (key.lower() == "connection" and "close" in value.lower())
    await reader.readexactly(length)
    return status, close


async def _small_client(url: str, request: bytes, until: float, out: list[tuple[float, int]]) -> None:
    """One client on its own keep-alive connection, posting again as soon as each answer is read.

    A bare asyncio HTTP/1.1 client: httpx's AsyncClient spent ~7 ms of CPU per request here, more than the server,
    and on 2 cores the load generator must not be what is measured."""
    host, port = url.split("//", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            try:
                status, close = await _exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                status, close = -1, True  # a transport error: counted with the server errors
            out.append((time.perf_counter() - t0, status))
            if close:  # the connection is gone or closing: a fresh one
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
    finally:
        writer.close()


def heavy_client(url: str, side: int, count: int, seconds: float, out: Any) -> None:
    """Post ``count`` side x side PNGs per request, back to back, for ``seconds``, in its own process so that it
    never delays the small clients' event loop. The request is encoded once and sent as bytes: the load generator
    shares the CPUs with the server, so it must cost as little as it can. ``(latency, status)`` pairs and this
    process's CPU seconds go to ``out``."""
    png = heavy_png(side)
    request = post_request(url, [(f"h{i}.png", png, "image/png") for i in range(count)])
    host, port = url.split("//", 1)[1].split(":")
    got: list[tuple[float, int]] = []

    async def loop() -> None:
        until = time.monotonic() + seconds
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.monotonic() < until:
            t0 = time.perf_counter()
            try:
                status, close = await _exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                status, close = -1, True
            got.append((time.perf_counter() - t0, status))
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
        writer.close()

    asyncio.run(loop())
    out.put((got, time.process_time()))


def _summary(small: list[tuple[float, int]], seconds: float) -> dict[str, Any]:
    lat = np.array([t for t, s in small if s == 200]) * 1000
    statuses: dict[str, int] = {}
    for _t, s in small:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    return {"requests": len(small), "ok": int(len(lat)), "requests_per_s": round(len(lat) / seconds, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
            "max_ms": round(float(lat.max()), 1) if len(lat) else None,
            "server_errors": sum(n for s, n in statuses.items() if int(s) >= 500 or int(s) < 0),
            "statuses": statuses}


async def run_phase(url: str, phase: str, args: argparse.Namespace, small: tuple[str, bytes]) -> dict[str, Any]:
    warm: list[tuple[float, int]] = []
    until = time.monotonic() + min(3.0, args.seconds)
    request = post_request(url, [(small[0], small[1], "image/jpeg")])
    await asyncio.gather(*(_small_client(url, request, until, warm) for _ in range(args.clients)))
    heavy_files = {"heavy-refused": 40, "heavy-admitted": args.admitted}.get(phase, 0)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=heavy_client, args=(url, args.side, heavy_files, args.seconds, results))
    if heavy_files:
        proc.start()
        await asyncio.sleep(1.0)  # the heavy client is under way before the measurement starts
    small_out: list[tuple[float, int]] = []
    t0 = time.monotonic()
    await asyncio.gather(*(_small_client(url, request, t0 + args.seconds, small_out)
                           for _ in range(args.clients)))
    elapsed = time.monotonic() - t0
    res: dict[str, Any] = {"phase": phase, "seconds": round(elapsed, 1), "small": _summary(small_out, elapsed),
                           "_samples": small_out}
    if heavy_files:
        heavy_out, heavy_cpu = await asyncio.to_thread(results.get, True, 900)
        proc.join(60)
        codes = [str(x) for _t, x in heavy_out]
        res["heavy"] = {"files_per_request": heavy_files, "requests": len(heavy_out),
                        "client_cpu_s": round(heavy_cpu, 1),
                        "statuses": {c: codes.count(c) for c in sorted(set(codes))},
                        "median_s": round(float(np.median([t for t, _s in heavy_out])), 2) if heavy_out else None}
    return res


def machine() -> dict[str, Any]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.+)", lscpu)
    import torch

    return {"cpu": model.group(1).strip() if model else platform.processor(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__, "pillow": Image.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_at_start": os.getloadavg()}


def measure(server: Server, args: argparse.Namespace, sample: Path) -> list[dict[str, Any]]:
    """Every phase, ``--rounds`` times in turn (quiet, heavy-refused, heavy-admitted, quiet, ...)."""
    mem = Memory(server.proc.pid)
    mem.start()
    done = []
    try:
        for r in range(args.rounds):
            for phase in PHASES:
                t0, cpu0, own0 = time.monotonic(), cpu_s(server.proc.pid), time.process_time()
                res = asyncio.run(run_phase(server.url, phase, args, (sample.name, sample.read_bytes())))
                res["round"] = r + 1
                res["cpu_s"] = {"server_and_workers": round(cpu_s(server.proc.pid) - cpu0, 1),
                                "load_generator": round(time.process_time() - own0, 1)}
                time.sleep(2.0)  # let a last heavy decode finish and the memory settle
                res["server_rss_mb"] = {"peak_with_workers": mem.peak_mb(t0, time.monotonic()),
                                        "after_with_workers": round(rss_kb(server.proc.pid) / 1024, 1),
                                        "after_server_alone": round(_rss_kb(server.proc.pid) / 1024, 1)}
                done.append(res)
                print({k: v for k, v in res.items() if k != "_samples"}, flush=True)
    finally:
        mem.stop.set()
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60, help="length of each phase (default 60)")
    ap.add_argument("--rounds", type=int, default=1, help="times through the three phases (default 1)")
    ap.add_argument("--clients", type=int, default=50, help="concurrent small-request clients (default 50)")
    ap.add_argument("--model", action="append", help="served model; repeat (default: every bundled model)")
    ap.add_argument("--side", type=int, default=7000, help="side of the heavy PNGs (default 7000)")
    ap.add_argument("--admitted", type=int, default=2, help="heavy PNGs per admitted request (default 2)")
    ap.add_argument("--out", default="benchmarks/results/serve.json", help="JSON results (default %(default)s)")
    args = ap.parse_args()
    sample = sorted((samples_dir() / "FAKE").glob("*.jpg"))[0]
    at_start = machine()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(args.model or [], Path(tmp) / "server.log")
        try:
            health = httpx.get(f"{server.url}/api/health").json()
            idle = round(rss_kb(server.proc.pid) / 1024, 1)
            runs = measure(server, args, sample)
        finally:
            log = server.stop()
    pooled = {ph: _summary([x for r in runs if r["phase"] == ph for x in r["_samples"]],
                           sum(r["seconds"] for r in runs if r["phase"] == ph)) for ph in PHASES}
    quiet_p99 = pooled["quiet"]["p99_ms"]
    worst = max(pooled[ph]["p99_ms"] or 0 for ph in PHASES[1:])
    result = {"command": " ".join(["python", "benchmarks/bench_serve.py", *sys.argv[1:]]), "machine": at_start,
              "load_average_at_end": os.getloadavg(), "models": health["models"], "server_limits": health["limits"],
              "clients": args.clients, "payload": f"{sample.name} (32x32 JPEG, {sample.stat().st_size} bytes)",
              "heavy_png_bytes": len(heavy_png(args.side)), "server_rss_mb_idle": idle, "by_phase": pooled,
              "runs": [{k: v for k, v in r.items() if k != "_samples"} for r in runs],
              "p99_ratio_heavy_vs_quiet": round(worst / quiet_p99, 2) if quiet_p99 else None,
              "server_errors": sum(p["server_errors"] for p in pooled.values()),
              "tracebacks_in_server_log": log.count("Traceback")}
    result["goal_met"] = bool(result["server_errors"] == 0 and result["p99_ratio_heavy_vs_quiet"] is not None
                              and result["p99_ratio_heavy_vs_quiet"] <= 2.0)
    write_json(args.out, result)
    print(json.dumps({"by_phase": pooled, **{k: result[k] for k in ("p99_ratio_heavy_vs_quiet", "server_errors",
                                                                    "goal_met")}}, indent=1))


if __name__ == "__main__":
    main()

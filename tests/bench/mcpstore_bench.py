#!/usr/bin/env python3
"""MCPStore (PyPI `mcpstore`) measured with the workload of mcpvisor-bench (DESIGN §12).

    python tests/bench/mcpstore_bench.py [cold|call|throughput|rss|idle|all] [--runs N]

Run from the repo root with the Python of a venv that has `mcpstore` installed (see
README.md beside this file). The server is the one tests/src/bin/mcpvisor-bench.rs uses:
`node .test-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js stdio`
(install it with `bash scripts/install-test-servers.sh`), the tool `echo` with
`{"message": "hi"}`.

Each scenario runs in a fresh worker process (a child of this one), so the peak RSS is that of
a process that did nothing else, and every MCP server a worker started can be found and
killed: this process makes itself a child subreaper, so servers orphaned by a worker are
re-parented here and are killed after each scenario. MCPStore keeps its data in a temporary
directory (FileConfig(path=...), and HOME of the worker points there too), removed at the end.

Scenarios (numbers as in mcpvisor-bench):
  cold        N = 10 and 30 services added as one batch (add_service of an mcpServers map),
              timed until wait_service reported every one ready and list_tools() returns an
              `echo` tool of each; setup itself is not timed (as Store::open is not).
              MCPStore connects lazily (add_service only registers; wait_service or first
              use connects), so two variants: sync API, wait_service() per service in turn;
              asyncio API, all wait_service() awaited at once.
  call        sequential call_tool("svc_echo", {"message": "hi"}) through the sync API,
              200 warm-up calls, then 2,000 timed: p50 / p95 / p99.
  throughput  16 calls in flight on one service for 3 s, no warm-up: (a) the native asyncio
              API (AsyncMCPStore, 16 coroutines), (b) the sync API from 16 threads; each in
              its own worker.
  rss         VmHWM of the worker process (MCPStore runs in-process) once 30 services are
              ready and their tools listed, plus 3 s for first probes; child servers excluded.
  idle        utime+stime of the worker over 10 s with 30 ready services, right after they
              are ready (as mcpvisor-bench does), and over the next 10 s.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_JS = (
    ROOT
    / ".test-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
)
TOOL = "echo"
ARGS = {"message": "hi"}
WORKER_TIMEOUT_S = 300  # a whole scenario, per worker process
READY_TIMEOUT_S = 120.0  # all services ready (mcpvisor-bench: wait_for(..., 120 s))
SCENARIOS = ["cold", "call", "throughput", "rss", "idle"]


# --------------------------------------------------------------------------- processes


def _proc_table() -> dict[int, int]:
    """pid -> ppid for every process visible in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[-1].split()
        table[int(entry)] = int(rest[1])
    return table


def descendants(pid: int) -> list[int]:
    table = _proc_table()
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in table.items() if pp == p]
        out.extend(kids)
        frontier.extend(kids)
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def kill_tree(pid: int, grace_s: float = 3.0) -> int:
    """SIGTERM every descendant of `pid`, then SIGKILL what is left; reaps zombies that are
    our own children. Returns how many processes were signalled."""
    pids = descendants(pid)
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap()
        if not [p for p in pids if _alive(p)]:
            break
        time.sleep(0.05)
    for p in pids:
        if _alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.1)
    _reap()
    return len(pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode(errors="replace").rsplit(")", 1)[-1].split()[0]
        return state != "Z"
    except OSError:
        return False


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:
        return False


# --------------------------------------------------------------------------- measuring


def pct(values: list[float], q: float) -> float:
    """Same rule as mcpvisor-bench's pct(): sorted, index round((n - 1) * q)."""
    v = sorted(values)
    if not v:
        return float("nan")
    return v[int(round((len(v) - 1) * q))]


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


def cpu_ticks() -> int:
    """utime + stime of this whole process (all its threads, Rust runtime included)."""
    with open("/proc/self/stat", "rb") as f:
        rest = f.read().decode().rsplit(")", 1)[-1].split()
    return int(rest[11]) + int(rest[12])


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def emit(name: str, value: float, unit: str, **extra) -> None:
    print(f"  {name:<52} {value:>10.3f} {unit}", flush=True)
    print("RESULT " + json.dumps({"name": name, "value": value, "unit": unit, **extra}),
          flush=True)


# --------------------------------------------------------------------------- MCPStore


def service_config(n: int, prefix: str) -> dict:
    node = shutil.which("node") or "node"
    return {
        "mcpServers": {
            f"{prefix}{i}": {"command": node, "args": [str(SERVER_JS), "stdio"]}
            for i in range(n)
        }
    }


def open_store(data_dir: Path):
    """The documented sync entry point, its definitions file in our temp dir."""
    from mcpstore import MCPStore
    from mcpstore.config import FileConfig

    return MCPStore.setup_store(FileConfig(path=str(data_dir / "mcp.json")), debug=False)


def start_many(ctx, n: int, prefix: str) -> list[str]:
    """Adds n services as one batch, waits until every one is ready and has its tools listed."""
    names = [f"{prefix}{i}" for i in range(n)]
    ctx.add_service(service_config(n, prefix))
    deadline = time.monotonic() + READY_TIMEOUT_S
    verbose = bool(os.environ.get("BENCH_VERBOSE"))
    waiting = ["", 0]  # service being waited for, its index

    def watchdog():  # wait_service has been seen not to return (see README): give up loudly
        print(f"    watchdog: not all ready after {READY_TIMEOUT_S + 10:.0f} s; waiting for "
              f"{waiting[0]} ({waiting[1]}/{n} ready), {len(descendants(os.getpid()))} "
              "server processes running; exiting", file=sys.stderr, flush=True)
        kill_tree(os.getpid())
        os._exit(3)

    dog = threading.Timer(READY_TIMEOUT_S + 10, watchdog)
    dog.daemon = True
    dog.start()
    for k, name in enumerate(names):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"services not ready within {READY_TIMEOUT_S} s")
        waiting[:] = [name, k]
        t = time.monotonic()
        ctx.wait_service(name, timeout=left)
        took = time.monotonic() - t
        if verbose or took > 5:
            print(f"    {name} ready after {took:.3f} s ({k + 1}/{n})", file=sys.stderr,
                  flush=True)
    dog.cancel()
    have = {t.info()["service_name"] for t in ctx.list_tools() if t.info()["tool_name"] == TOOL}
    missing = set(names) - have
    if missing:
        raise RuntimeError(f"no {TOOL} tool listed for {sorted(missing)[:5]}...")
    return names


def scenario_cold(data_dir: Path, arg: str) -> None:
    """arg "N:sync": the documented sync API, wait_service() for each service in turn (MCPStore
    connects a service lazily, on wait_service or first use, so this connects them one by
    one); arg "N:async": AsyncMCPStore, all N wait_service() awaited at once (asyncio.gather),
    the most concurrent start its API offers."""
    n_s, _, api = arg.partition(":")
    n = int(n_s)
    if api == "async":
        import asyncio
        from mcpstore import AsyncMCPStore

        async def run() -> tuple[float, float]:
            t = time.perf_counter()
            s = AsyncMCPStore.setup_with_options(
                str(data_dir / "mcp.json"), "local", "memory", "{}", None, "control_plane"
            )
            setup_ms = (time.perf_counter() - t) * 1000
            ctx = s.for_store()
            names = [f"s{i}" for i in range(n)]
            t = time.perf_counter()
            await ctx.add_service(service_config(n, "s"))
            await asyncio.gather(*[ctx.wait_service(service_name=x, timeout=READY_TIMEOUT_S)
                                   for x in names])
            tools = await ctx.list_tools()
            infos = await asyncio.gather(*[x.info() for x in tools])
            ms = (time.perf_counter() - t) * 1000
            have = {i["service_name"] for i in infos if i["tool_name"] == TOOL}
            if set(names) - have:
                raise RuntimeError(f"no {TOOL} tool listed for {sorted(set(names) - have)[:5]}")
            return ms, setup_ms

        ms, setup_ms = asyncio.run(asyncio.wait_for(run(), READY_TIMEOUT_S + 30))
        emit(f"cold start of {n} servers -> tools listed, asyncio API", ms, "ms",
             setup_ms=setup_ms)
        return
    t = time.perf_counter()
    store = open_store(data_dir)
    setup_ms = (time.perf_counter() - t) * 1000
    ctx = store.for_store()
    t = time.perf_counter()
    start_many(ctx, n, "s")
    ms = (time.perf_counter() - t) * 1000
    emit(f"cold start of {n} servers -> tools listed, sync API", ms, "ms", setup_ms=setup_ms)


def scenario_call(data_dir: Path) -> None:
    n, warm_up, budget_s = 2000, 200, 180.0
    store = open_store(data_dir)
    ctx = store.for_store()
    start_many(ctx, 1, "svc")
    name = f"svc0_{TOOL}"  # MCPStore's store-scope tool name: {service}_{tool}
    res = ctx.call_tool(name, dict(ARGS))
    if res.get("is_error") or "Echo: hi" not in json.dumps(res):
        raise RuntimeError(f"unexpected echo result: {res}")
    t0 = time.monotonic()
    for _ in range(warm_up):
        ctx.call_tool(name, dict(ARGS))
    lat = []
    for _ in range(n):
        if time.monotonic() - t0 > budget_s:
            break
        t = time.perf_counter()
        ctx.call_tool(name, dict(ARGS))
        lat.append((time.perf_counter() - t) * 1000)
    extra = {"calls": len(lat)}
    emit("call_tool p50, sequential", pct(lat, 0.5), "ms", **extra)
    emit("call_tool p95, sequential", pct(lat, 0.95), "ms", **extra)
    emit("call_tool p99, sequential", pct(lat, 0.99), "ms", **extra)
    emit("call_tool min, sequential", min(lat), "ms", **extra)
    print(f"  ({len(lat)} timed calls after {warm_up} warm-up calls)")


def scenario_throughput(data_dir: Path, api: str) -> None:
    """api "async": the native asyncio API (AsyncMCPStore), 16 coroutines; api "sync": the
    documented sync API from 16 threads. Each in its own worker process."""
    in_flight, window = 16, 3.0
    name = f"svc0_{TOOL}"
    if api == "async":
        import asyncio
        from mcpstore import AsyncMCPStore

        async def run_async() -> tuple[int, float]:
            # The same arguments setup_store(FileConfig(path)) passes to the Rust core.
            s = AsyncMCPStore.setup_with_options(
                str(data_dir / "mcp.json"), "local", "memory", "{}", None, "control_plane"
            )
            ctx = s.for_store()
            await ctx.add_service(service_config(1, "svc"))
            await ctx.wait_service(service_name="svc0", timeout=READY_TIMEOUT_S)
            done = 0
            t = time.perf_counter()

            async def worker():
                nonlocal done
                while time.perf_counter() - t < window:
                    await ctx.call_tool(name, dict(ARGS))
                    done += 1

            await asyncio.wait_for(
                asyncio.gather(*[worker() for _ in range(in_flight)]), timeout=window + 60
            )
            return done, time.perf_counter() - t

        done, secs = asyncio.run(run_async())
        emit("throughput, 16 in flight, asyncio API (calls/s)", done / secs, "/s", calls=done)
        return

    store = open_store(data_dir)
    ctx = store.for_store()
    start_many(ctx, 1, "svc")
    count = [0]
    lock = threading.Lock()
    errors = []
    t = time.perf_counter()

    def thread_worker():
        try:
            while time.perf_counter() - t < window:
                ctx.call_tool(name, dict(ARGS))
                with lock:
                    count[0] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=thread_worker, daemon=True) for _ in range(in_flight)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=window + 60)
    secs = time.perf_counter() - t
    if errors:
        raise RuntimeError(errors[0])
    emit("throughput, 16 in flight, sync API x16 threads (calls/s)", count[0] / secs, "/s",
         calls=count[0])


N_SERVICES = int(os.environ.get("BENCH_SERVICES", "30"))


def thirty(data_dir: Path):
    n = N_SERVICES
    store = open_store(data_dir)
    ctx = store.for_store()
    start_many(ctx, n, "s")
    return store, ctx


def scenario_rss(data_dir: Path) -> None:
    import mcpstore  # noqa: F401 - imported before the baseline, like the store's code
    import mcpstore._rust  # noqa: F401

    base_rss = status_kib("VmRSS:") / 1024
    _store, _ctx = thirty(data_dir)
    time.sleep(3.0)  # first probes, as mcpvisor-bench's rss-cli waits 3 s
    emit(f"MCPStore process peak RSS (VmHWM), {N_SERVICES} services",
         status_kib("VmHWM:") / 1024, "MiB")
    emit("  resident now (VmRSS)", status_kib("VmRSS:") / 1024, "MiB")
    emit("  resident now: anonymous (RssAnon)", status_kib("RssAnon:") / 1024, "MiB")
    emit("  resident now: file-backed (RssFile)", status_kib("RssFile:") / 1024, "MiB")
    emit("  RSS after import, before setup_store", base_rss, "MiB")
    emit("  threads", float(status_kib("Threads:")), "")


def scenario_idle(data_dir: Path) -> None:
    _store, _ctx = thirty(data_dir)
    hz = os.sysconf("SC_CLK_TCK")
    secs = 10.0
    for label in ("0-10 s after ready", "10-20 s after ready"):
        t0, w0 = cpu_ticks(), time.monotonic()
        time.sleep(secs)
        ticks, wall = cpu_ticks() - t0, time.monotonic() - w0
        emit(f"MCPStore idle CPU, {N_SERVICES} services, {label} (% of a core)",
             100.0 * ticks / hz / wall, "%", ticks=ticks, wall_s=wall)


def worker_main(scenario: str, data_dir: Path, arg: str | None) -> None:
    try:
        if scenario == "cold":
            scenario_cold(data_dir, arg or "10:sync")
        elif scenario == "call":
            scenario_call(data_dir)
        elif scenario == "throughput":
            scenario_throughput(data_dir, arg or "async")
        elif scenario == "rss":
            scenario_rss(data_dir)
        elif scenario == "idle":
            scenario_idle(data_dir)
    finally:
        n = kill_tree(os.getpid())
        print(f"  (worker: killed {n} server processes)", flush=True)
    sys.stdout.flush()
    # MCPStore has no close(); skip interpreter teardown of its runtime threads.
    os._exit(0)


# --------------------------------------------------------------------------- driver


FAILED: list[str] = []


def run_worker(scenario: str, arg: str | None, tmp: Path) -> list[dict]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"{scenario}-", dir=tmp))
    env = dict(os.environ, HOME=str(data_dir), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", scenario,
           "--data-dir", str(data_dir)]
    if arg:
        cmd += ["--arg", arg]
    print(f"[{scenario}{' ' + arg if arg else ''}] loadavg {loadavg()}", flush=True)
    results = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    timed_out = []

    def on_timeout():
        timed_out.append(True)
        proc.kill()

    timer = threading.Timer(WORKER_TIMEOUT_S, on_timeout)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("RESULT "):
                results.append(json.loads(line[7:]))
            else:
                print(line, end="", flush=True)
        rc = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = kill_tree(os.getpid())
    if left:
        print(f"  (driver: killed {left} orphaned server processes)", flush=True)
    if rc != 0:
        why = f" (killed after {WORKER_TIMEOUT_S} s)" if timed_out else ""
        print(f"  worker exited with {rc}{why}", flush=True)
        FAILED.append(f"{scenario} {arg or ''}".strip())
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="*", default=["all"],
                   help="cold | call | throughput | rss | idle | all")
    p.add_argument("--runs", type=int, default=1, help="repeat each scenario (default 1)")
    p.add_argument("--json", type=Path, help="also write all results to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--arg", help=argparse.SUPPRESS)
    a = p.parse_args()

    if a.worker:
        worker_main(a.worker, a.data_dir, a.arg)
        return 0

    what = SCENARIOS if "all" in a.what or not a.what else a.what
    bad = [w for w in what if w not in SCENARIOS]
    if bad:
        p.error(f"unknown scenario(s) {bad}; choose from {SCENARIOS} or all")
    if not SERVER_JS.exists():
        print("server-everything not installed: run `bash scripts/install-test-servers.sh`",
              file=sys.stderr)
        return 2
    try:
        import mcpstore
    except ImportError:
        print("mcpstore not importable: see tests/bench/README.md", file=sys.stderr)
        return 2
    if not become_subreaper():
        print("warning: could not become a child subreaper; orphans may escape cleanup",
              file=sys.stderr)
    node_v = subprocess.run([shutil.which("node") or "node", "--version"],
                            capture_output=True, text=True).stdout.strip()
    print(f"MCPStore {mcpstore.__version__} bench, python {sys.version.split()[0]}, "
          f"node {node_v}, {os.cpu_count()} CPUs")
    print(f"server: node {SERVER_JS} stdio; tool {TOOL} {json.dumps(ARGS)}")

    all_results = []
    tmp = Path(tempfile.mkdtemp(prefix="mcpstore-bench-"))
    try:
        for run in range(1, a.runs + 1):
            print(f"=== run {run}/{a.runs}", flush=True)
            for s in what:
                jobs = {"cold": [("cold", f"{n}:{api}") for n in (10, 30)
                                 for api in ("sync", "async")],
                        "throughput": [("throughput", "async"), ("throughput", "sync")],
                        }.get(s, [(s, None)])
                for scen, arg in jobs:
                    for r in run_worker(scen, arg, tmp):
                        all_results.append({"run": run, "scenario": scen, **r})
    finally:
        kill_tree(os.getpid())
        shutil.rmtree(tmp, ignore_errors=True)

    ours = descendants(os.getpid())
    anywhere = [p for p in _proc_table() if str(SERVER_JS) in cmdline(p)]
    print(f"=== done; processes of ours left: {len(ours)} "
          f"(server-everything processes on the whole machine: {len(anywhere)})")
    if a.json:
        a.json.write_text(json.dumps({"mcpstore": mcpstore.__version__,
                                      "results": all_results}, indent=2))
    if FAILED:
        print(f"failed: {', '.join(FAILED)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

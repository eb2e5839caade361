"""Call set-up latency of the production topology under load, measured on the servers.

Starts the topology of kefu.platform.devcluster on this machine (its own
PostgreSQL and Redis; api-a, api-b, media-a, media-b, worker-a, worker-b as
separate processes), waits until each API replica is ready (``GET /ready``)
and sees both media nodes (``kefu_media_nodes_live`` on its ``/metrics``),
then runs ``bench/loadgen.py`` **in its own process** against both replicas:
``--tenants`` tenants of ``--agents`` agents onboarded through the public
APIs, then open-loop Poisson call arrivals at ``--rate`` per second for
``--seconds``.  By default (``--after-ring caller-hangup``) each caller hangs up
as soon as its agent's phone rings: the run measures the set-up — the caller's
offer to the agent ringing — and the call's end, which is what the target is
about.  ``--after-ring answer`` runs whole calls instead: each is answered by
its agent (agent leg, bridge, recording) and hung up after ``--talk`` seconds,
for the capacity of the whole call lifecycle.

**Server side**: ``kefu_call_setup_seconds`` on each API replica times a call
from the start of ``CallFlow.start_web_call`` (the caller's offer received) to
the agent's offer committed and pushed (its phone rings), for calls offered
on arrival.  ``/metrics`` of both replicas is scraped before and after the
run; the bucket counts' differences are summed over the replicas and the p99
is read from them by linear interpolation inside the bucket that holds it,
as Prometheus' ``histogram_quantile`` does (so it is exact only to within that
bucket's width).  **Client side**: the load generator's own figures (from
sending the offer to the agent's socket receiving ``call.offered``, which adds
HTTP, the push through Redis and the generator's event loop).

Also printed: the CPU time of each server process (and of the load generator
and of the whole machine, whose other users show as the difference) during
the call phase.  ``--profile DIR`` samples the API replicas and media nodes
with py-spy during the call phase and prints where their time goes.

The last line is ``setup_p99_ms=<x> setups_per_s=<y>``: the server-side p99,
and the set-ups achieved per second (calls whose offer reached an agent,
over the time from the first offer sent to the last offer received).
Target: p99 under 300 ms at 50 set-ups per second on a 2-core machine.

Run: ``.venv/bin/python bench/cluster_load.py [--rate 50] [--seconds 30] [--tenants 20] [--agents 10]
[--after-ring caller-hangup|answer] [--profile DIR]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kefu.platform.devcluster import Topology

BENCH = Path(__file__).resolve().parent
SETUP_METRIC = "kefu_call_setup_seconds"


# --- /metrics -------------------------------------------------------------------------------


def scrape(url: str, token: str) -> str:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    response.raise_for_status()
    return response.text


def gauge(text: str, name: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def gauge_sum(text: str, name: str) -> float | None:
    """A labelled gauge summed over its labels (e.g. every media node)."""
    values = [sample.value for family in text_string_to_metric_families(text) for sample in family.samples if sample.name == name]
    return sum(values) if values else None


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts by upper bound (``+Inf`` included) of an unlabelled histogram."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                buckets[float(sample.labels["le"])] = buckets.get(float(sample.labels["le"]), 0.0) + sample.value
    return buckets


def bucket_deltas(before: list[str], after: list[str], name: str = SETUP_METRIC) -> dict[float, float]:
    """What the replicas observed between the two scrapes, summed over replicas (as ``sum by (le)``)."""
    total: Counter[float] = Counter()
    for old, new in zip(before, after, strict=True):
        start = histogram(old, name)
        for bound, count in histogram(new, name).items():
            total[bound] += count - start.get(bound, 0.0)
    return dict(total)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile``: find the bucket holding rank ``q * count`` and
    interpolate linearly between its bounds (the first bucket's lower bound is 0); a rank in
    the ``+Inf`` bucket answers the largest finite bound.  NaN without observations."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return math.nan
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


# --- CPU -----------------------------------------------------------------------------------------


def _ticks(pid: int, *, children: bool = True) -> int:
    """utime + stime (+ cutime + cstime: reaped children) of a process, in clock ticks; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (/proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(topology: Topology, loadgen_pid: int) -> dict[str, float]:
    """CPU seconds so far of each server process, of PostgreSQL (the postmaster, its live
    backends, and through the postmaster the ones that exited), Redis and the load generator."""
    hz = os.sysconf("SC_CLK_TCK")
    seconds = {name: _ticks(process.pid) / hz for name, process in topology.processes.items()}
    postmaster = int((topology.postgres.root / "data" / "postmaster.pid").read_text().split()[0])
    seconds["postgres"] = (_ticks(postmaster) + sum(_ticks(child, children=False) for child in _children(postmaster))) / hz
    seconds["redis"] = _ticks(topology.redis.process.pid) / hz
    seconds["loadgen"] = _ticks(loadgen_pid) / hz
    seconds["machine"] = machine_busy_s()
    return seconds


def database_counters(topology: Topology) -> dict[str, float]:
    """The cluster database's transaction and row counters (pg_stat_database)."""
    names = ("xact_commit", "xact_rollback", "tup_fetched", "tup_inserted", "tup_updated", "tup_deleted")
    row = topology.postgres.psql(topology.database, f"select {', '.join(names)} from pg_stat_database where datname = current_database()")
    return dict(zip(names, (float(v) for v in row.strip().split("|")), strict=True))


def table_reads(topology: Topology) -> dict[str, float]:
    """Rows read so far per table (sequential scans' rows + rows fetched through indexes)."""
    rows = topology.postgres.psql(
        topology.database, "select relname, seq_tup_read + coalesce(idx_tup_fetch, 0) from pg_stat_user_tables")
    return {name: float(count) for name, count in (line.split("|") for line in rows.splitlines() if line)}


# --- profiles --------------------------------------------------------------------------------------


def start_profiles(topology: Topology, directory: Path, seconds: float) -> list[tuple[str, Path, subprocess.Popen[bytes]]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    running = []
    for name in [*topology.names("api"), *topology.names("media")]:
        out = directory / f"{name}.txt"
        command = [spy, "record", "--pid", str(topology[name].pid), "--duration", str(math.ceil(seconds)), "--rate", "100",
                   "--format", "raw", "--nonblocking", "--output", str(out)]
        running.append((name, out, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    return running


KEFU_SOURCES = ("platform/", "tenants/", "webrtc/", "billing/")  # how py-spy shortens kefu's own paths
ENTRY_FRAMES = ("<module> (kefu", "main (platform/cli.py", "run_api (", "run_media (")  # under every sample


def _source(frame: str) -> str:
    """The package a py-spy frame (``function (path/file.py:line)``) runs in: ``kefu`` or the
    first part of the path (``sqlalchemy``, ``asyncpg``, ``asyncio``, ...)."""
    path = frame.rsplit(" (", 1)[1].split(":", 1)[0] if " (" in frame else frame
    if path.startswith(KEFU_SOURCES):
        return "kefu"
    return path.split("/", 1)[0].removesuffix(".py")


def summarize_profile(path: Path, *, seconds: float, rate: int = 100, top: int = 12) -> list[str]:
    """From py-spy's collapsed stacks (idle excluded): how busy the process was, its samples by
    the package at the top of the stack (where the CPU goes), and kefu's functions with the
    most samples on the stack (what it was doing)."""
    by_source: Counter[str] = Counter()
    kefu: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue  # an empty line, or one py-spy cut short (a process ending mid-write)
        count, frames = int(count_text), stack.split(";")
        total += count
        by_source[_source(frames[-1])] += count
        for frame in {f for f in frames if _source(f) == "kefu" and not f.startswith(ENTRY_FRAMES)}:
            kefu[frame.rsplit(":", 1)[0] + ")"] += count
    if not total:
        return ["  (no samples)"]
    lines = [f"  {total} samples in {seconds:.0f} s at {rate} Hz: about {total / (seconds * rate):.2f} of a core busy; "
             "by package at the top of the stack (asyncio: the event loop itself, uvloop's C code and I/O):"]
    lines.append("    " + ", ".join(f"{name} {100 * n / total:.0f} %" for name, n in by_source.most_common(top)))
    lines.append("  kefu functions with the most samples on the stack (inclusive):")
    lines += [f"    {100 * n / total:5.1f} %  {frame}" for frame, n in kefu.most_common(top)]
    return lines


# --- the run ---------------------------------------------------------------------------------------


def wait_for_media(topology: Topology, token: str, *, timeout: float = 60) -> None:
    """Every API replica ready and seeing every media node."""
    wanted = len(topology.names("media"))
    deadline = time.monotonic() + timeout
    for url in topology.api_urls():
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200 and (gauge(scrape(url, token), "kefu_media_nodes_live") or 0) >= wanted:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not become ready with {wanted} media nodes within {timeout} s")
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="call arrivals per second (default 50)")
    parser.add_argument("--seconds", type=float, default=30.0, help="arrival window (default 30)")
    parser.add_argument("--tenants", type=int, default=20, help="tenants (default 20)")
    parser.add_argument("--agents", type=int, default=10, help="agents per tenant (default 10)")
    parser.add_argument("--talk", type=float, default=1.5, help="seconds an agent talks before hanging up (default 1.5)")
    parser.add_argument("--after-ring", choices=("answer", "caller-hangup"), default="caller-hangup",
                        help="after the ring: the caller hangs up at once (default: the set-up, as the target defines it); "
                             "or the agent answers, talks and hangs up (whole calls)")
    parser.add_argument("--profile", type=Path, help="sample the API replicas and media nodes with py-spy into this folder")
    parser.add_argument("--root", type=Path, help="keep the topology's logs in this folder (default: a temporary one, deleted)")
    args = parser.parse_args()

    token = secrets.token_hex(16)
    started = time.perf_counter()
    topology = Topology.start(root=args.root, env={"KEFU_METRICS_TOKEN": token})
    try:
        topology.wait_ready(*topology.names("api"), *topology.names("media"))
        wait_for_media(topology, token)
        client_id, client_secret = topology.operator_client("cluster-load")
        apis = topology.api_urls()
        print(f"topology up in {time.perf_counter() - started:.1f} s: {', '.join(f'{n}={topology[n].url}' for n in topology.processes)}", flush=True)

        before = [scrape(url, token) for url in apis]
        with tempfile.TemporaryDirectory(prefix="kefu-cluster-load-") as scratch:
            summary_path = Path(scratch) / "loadgen.json"
            command = [sys.executable, str(BENCH / "loadgen.py"), *[a for url in apis for a in ("--api", url)],
                       "--operator-id", client_id, "--operator-secret", client_secret, "--tenants", str(args.tenants),
                       "--agents", str(args.agents), "--rate", str(args.rate), "--seconds", str(args.seconds),
                       "--talk", str(args.talk), "--after-ring", args.after_ring, "--json", str(summary_path)]
            loadgen = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            assert loadgen.stdout is not None
            cpu_start = cpu_end = None
            db_start: dict[str, float] = {}
            db_end: dict[str, float] = {}
            reads_start: dict[str, float] = {}
            reads_end: dict[str, float] = {}
            calls_started = calls_wall = 0.0
            profiles: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
            for line in loadgen.stdout:
                if line.startswith("{"):
                    continue  # the JSON summary: read from the file
                print(f"  loadgen | {line.rstrip()}", flush=True)
                if line.startswith("== phase calls: start"):
                    cpu_start, calls_started = cpu_snapshot(topology, loadgen.pid), time.perf_counter()
                    db_start, reads_start = database_counters(topology), table_reads(topology)
                    if args.profile:
                        profiles = start_profiles(topology, args.profile, args.seconds)
                elif line.startswith("== phase calls: done"):
                    cpu_end, calls_wall = cpu_snapshot(topology, loadgen.pid), time.perf_counter() - calls_started
                    db_end, reads_end = database_counters(topology), table_reads(topology)
            code = loadgen.wait()
            if not summary_path.exists():
                print(f"the load generator failed ({code})", flush=True)
                return 1
            report = json.loads(summary_path.read_text())
        # Every call ended: the media nodes report their legs gone with their next heartbeat.
        settle = time.monotonic() + 10
        while (gauge_sum(scrape(apis[0], token), "kefu_media_node_legs") or 0) > 0 and time.monotonic() < settle:
            time.sleep(0.2)
        after = [scrape(url, token) for url in apis]
        for _, _, spy in profiles:
            spy.wait(60)

        statuses = topology.postgres.psql(topology.database, "select status, count(*) from calls group by status order by status")
        legs = gauge_sum(after[0], "kefu_media_node_legs") or 0.0
        deltas = bucket_deltas(before, after)
        observed = deltas.get(math.inf, 0.0)
        p50, p99 = histogram_quantile(0.5, deltas), histogram_quantile(0.99, deltas)
        per_replica = [bucket_deltas([old], [new]).get(math.inf, 0.0) for old, new in zip(before, after, strict=True)]
        calls = report["calls"]
        print(f"server side ({SETUP_METRIC}, bucket deltas summed over {len(apis)} replicas, linear interpolation in the bucket "
              f"as histogram_quantile): {observed:.0f} calls offered on arrival ({' + '.join(f'{n:.0f}' for n in per_replica)}), "
              f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms", flush=True)
        setup = report["operations"].get("call.setup", {})
        if setup.get("count"):
            print(f"client side (offer sent -> call.offered on the agent's socket): {setup['count']} set-ups, p50 {setup['p50_ms']:.1f} ms, "
                  f"p95 {setup['p95_ms']:.1f} ms, p99 {setup['p99_ms']:.1f} ms, max {setup['max_ms']:.1f} ms", flush=True)
        print(f"calls: {calls['arrivals']} arrivals ({calls['arrival_rate']}/s), {calls['offered']} reached an agent, "
              f"{calls['answered']} answered, {calls['hung_up']} hung up; errors {report['error_count']} {report['errors'] or ''}", flush=True)
        refused = sum((gauge_sum(new, "kefu_calls_refused_total") or 0.0) - (gauge_sum(old, "kefu_calls_refused_total") or 0.0)
                      for old, new in zip(before, after, strict=True))
        print(f"refused by the replicas' set-up bound (503 overloaded, KEFU_CALL_SETUPS_IN_FLIGHT): {refused:.0f}", flush=True)
        if cpu_start and cpu_end and calls_wall:
            used = {name: cpu_end[name] - cpu_start[name] for name in cpu_start}
            ours = sum(v for k, v in used.items() if k != "machine")
            print(f"CPU during the call phase ({calls_wall:.1f} s, {os.cpu_count()} cores; share of one core): "
                  + ", ".join(f"{name} {100 * v / calls_wall:.0f} %" for name, v in used.items() if name != "machine")
                  + f"; these together {ours / calls_wall:.2f} cores, the machine {used['machine'] / calls_wall:.2f} cores "
                  f"(the rest is other work on the machine)", flush=True)
            if calls["offered"]:
                api_cpu = sum(v for k, v in used.items() if k.startswith("api"))
                media_cpu = sum(v for k, v in used.items() if k.startswith("media"))
                print(f"CPU per call: API {api_cpu / calls['offered'] * 1000:.1f} ms, media {media_cpu / calls['offered'] * 1000:.1f} ms, "
                      f"PostgreSQL + Redis {(used['postgres'] + used['redis']) / calls['offered'] * 1000:.1f} ms", flush=True)
                if db_start and db_end:
                    print("database work per call (pg_stat_database, every process): "
                          + ", ".join(f"{name} {(db_end[name] - db_start[name]) / calls['offered']:.1f}" for name in db_start), flush=True)
                    reads = Counter({name: reads_end.get(name, 0.0) - count for name, count in reads_start.items()})
                    print("rows read per call, by table: "
                          + ", ".join(f"{name} {count / calls['offered']:.0f}" for name, count in reads.most_common(6)), flush=True)
        print(f"after the run: calls by status {dict(line.split('|') for line in statuses.splitlines())}; "
              f"media legs still open {legs:.0f} (the nodes' heartbeats, as {apis[0]} sees them, up to 10 s after the run)", flush=True)
        for name, out, _ in profiles:
            print(f"profile of {name} ({out}):", flush=True)
            for line in summarize_profile(out, seconds=args.seconds) if out.exists() else ["  (py-spy wrote nothing)"]:
                print(line, flush=True)
        print(f"setup_p99_ms={p99 * 1000:.1f} setups_per_s={calls['setups_per_s']:.1f}", flush=True)
        return 0 if report["error_count"] == 0 and observed > 0 else 1
    finally:
        topology.close()


if __name__ == "__main__":
    raise SystemExit(main())

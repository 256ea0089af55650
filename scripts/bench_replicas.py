#!/usr/bin/env python3
"""Several `meshctl serve` replicas on one PostgreSQL store (`make bench-replicas`; figures in docs/BENCHMARKS.md).

A throwaway PostgreSQL (initdb into a temporary directory — as `nobody` when run as root, since the server
refuses root — on a Unix socket there, fsync on) holds the synthetic benchmark mesh (`meshctl bench-fixture`:
one group, --clusters EDS clusters, a listener and a route). --replicas `meshctl serve` processes follow it.

1. publish → every replica serving: --changes one-cluster changes, one at a time. For each, the time from the
   publish returning (the fixture prints it) to each replica's `snapshot.loaded` log line (JSON logs, ms).
2. publish → every proxy ACKed: one `meshctl loadgen` per replica (--proxies simulated ADS proxies each, mTLS),
   then --fleet-changes one-cluster changes, --gap seconds apart. Each loadgen matches the store's versions to
   its proxies' ACKs (`--store` the same PostgreSQL URL). Per change: the slowest replica's p50/p99 and the
   time the last of all proxies ACKed. CPU of every replica and every loadgen over the phase.
3. memory against stored versions: each replica's RSS after the runs above, then after publishing --churn
   more versions (endpoint churn) twice. A replica keeps the snapshot it serves (and the previous one during a
   rollout), not the history: its RSS must not grow with the number of versions in the store.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_xds import cpu_seconds, free_port, rss_kib, stop, wait_port  # noqa: E402  (make bench's process helpers)


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def log_time(text):
    # 2026-12-05T00:49:51.123+0000 (ServerLog's ISO 8601 with milliseconds)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class Postgres:
    """A PostgreSQL server of our own in a temporary directory, stopped by `stop()`."""

    def __init__(self, work):
        bins = sorted((d for d in os.listdir("/usr/lib/postgresql") if os.path.isdir(f"/usr/lib/postgresql/{d}/bin")),
                      key=lambda d: int(d) if d.isdigit() else 0) if os.path.isdir("/usr/lib/postgresql") else []
        if not bins:
            raise SystemExit("PostgreSQL is not installed: `make deps` installs the postgresql package")
        self.bin = f"/usr/lib/postgresql/{bins[-1]}/bin"
        self.dir = os.path.join(work, "pg")
        os.mkdir(self.dir)
        self.run_as = []
        if os.getuid() == 0:
            shutil.chown(work, "nobody", "nogroup")
            os.chmod(work, 0o755)
            shutil.chown(self.dir, "nobody", "nogroup")
            self.run_as = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--reset-env"]
        subprocess.run(self.run_as + [f"{self.bin}/initdb", "-D", f"{self.dir}/data", "-U", "meshctl", "--auth=trust",
                                      "--encoding=UTF8", "--locale=C"], check=True, stdout=subprocess.DEVNULL)
        self.port = free_port()
        self.process = subprocess.Popen(self.run_as + [f"{self.bin}/postgres", "-D", f"{self.dir}/data", "-k", self.dir,
                                                       "-p", str(self.port), "-c", "listen_addresses=", "-c", "max_connections=200"],
                                        stdout=open(os.path.join(work, "postgres.log"), "w"), stderr=subprocess.STDOUT)
        for _ in range(200):
            if subprocess.run(self.run_as + [f"{self.bin}/pg_isready", "-h", self.dir, "-p", str(self.port), "-U", "meshctl"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1)
        else:
            self.stop()
            raise SystemExit("PostgreSQL did not start within 20 s (see postgres.log in the work directory)")
        subprocess.run(self.run_as + [f"{self.bin}/psql", "-h", self.dir, "-p", str(self.port), "-U", "meshctl", "-d", "postgres",
                                      "-qc", "CREATE DATABASE bench"], check=True)
        self.url = f"postgres://meshctl@{quote(self.dir, safe='')}:{self.port}/bench"

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Bench:
    def __init__(self, args):
        self.args = args
        self.meshctl = os.path.abspath(args.meshctl)
        self.work = tempfile.mkdtemp(prefix="meshctl-bench-replicas-")
        self.certs = os.path.join(self.work, "certs")
        subprocess.run([self.meshctl, "certs", "init", "--out", self.certs, "--proxy", "loadgen"], check=True, stdout=subprocess.DEVNULL)
        self.identity = "spiffe://mesh.local/proxy/loadgen"
        self.postgres = Postgres(self.work)
        self.replicas = []
        self.revision = 0

    def publish(self, *extra):
        """One fixture publish; returns (version, when the publish returned)."""
        command = [self.meshctl, "bench-fixture", "--store", self.postgres.url, "--clusters", str(self.args.clusters),
                   "--identity", self.identity, "--print-published-at", *extra]
        out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300).stdout.split()
        return out[0], float(out[1])

    def change(self):
        self.revision += 1
        return self.publish("--change-cluster", str(1 + self.revision % self.args.clusters), "--revision", str(self.revision))

    def start_replicas(self):
        for index in range(self.args.replicas):
            port, admin = free_port(), free_port()
            log_path = os.path.join(self.work, f"replica-{index}.log")
            process = subprocess.Popen([self.meshctl, "serve", "--store", self.postgres.url, "--listen", f"127.0.0.1:{port}",
                                        "--admin", f"127.0.0.1:{admin}", "--tls-cert", f"{self.certs}/server.crt",
                                        "--tls-key", f"{self.certs}/server.key", "--client-ca", f"{self.certs}/ca.crt",
                                        "--max-connections", str(self.args.proxies + 100), "--log-format", "json",
                                        "--drain-seconds", "1"], stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
            self.replicas.append({"process": process, "port": port, "admin": admin, "log": log_path})
        for replica in self.replicas:
            if not wait_port(replica["port"], 60):
                raise SystemExit(f"a replica did not listen within 60 s (see {replica['log']})")

    def loaded_at(self, replica, version):
        """When the replica's log says it serves `version` (None if not yet)."""
        with open(replica["log"]) as f:
            for line in f:
                if '"snapshot.loaded"' in line:
                    entry = json.loads(line)
                    if version.startswith(entry.get("version", "-")):
                        return log_time(entry["time"])
        return None

    def wait_served(self, version, timeout=30):
        deadline = time.time() + timeout
        times = [None] * len(self.replicas)
        while time.time() < deadline:
            times = [t if t is not None else self.loaded_at(r, version) for r, t in zip(self.replicas, times)]
            if all(t is not None for t in times):
                return times
            time.sleep(0.02)
        raise SystemExit(f"version {version[:12]} did not reach every replica within {timeout} s: {times}")

    def phase_replicas(self):
        latencies = []  # per change: [ms per replica]
        for _ in range(self.args.changes):
            version, published = self.change()
            served = self.wait_served(version)
            latencies.append([(t - published) * 1000 for t in served])
            time.sleep(0.2)
        every = [max(row) for row in latencies]
        each = [ms for row in latencies for ms in row]
        return {"changes": len(latencies), "all_p50": percentile(every, 0.5), "all_p99": percentile(every, 0.99),
                "all_max": max(every), "each_p50": percentile(each, 0.5), "each_p99": percentile(each, 0.99)}

    def phase_fleet(self):
        duration = 90 + self.args.fleet_changes * self.args.gap
        clients = []
        for index, replica in enumerate(self.replicas):
            report = os.path.join(self.work, f"loadgen-{index}.json")
            ready = os.path.join(self.work, f"ready-{index}")
            process = subprocess.Popen([self.meshctl, "loadgen", "--server", f"127.0.0.1:{replica['port']}",
                                        "--ca", f"{self.certs}/ca.crt", "--cert", f"{self.certs}/loadgen.crt",
                                        "--key", f"{self.certs}/loadgen.key", "--proxies", str(self.args.proxies),
                                        "--duration", str(duration), "--store", self.postgres.url, "--json", report,
                                        "--ready-file", ready, "--threads", "1"],
                                       stdout=open(report + ".log", "w"), stderr=subprocess.STDOUT)
            clients.append({"process": process, "report": report, "ready": ready})
        deadline = time.time() + 180
        while time.time() < deadline and not all(os.path.exists(c["ready"]) for c in clients):
            if any(c["process"].poll() is not None for c in clients):
                break
            time.sleep(0.1)
        if not all(os.path.exists(c["ready"]) for c in clients):
            for c in clients:
                stop(c["process"])
            raise SystemExit("the simulated proxies were not all configured within 180 s (see loadgen-*.json.log)")
        time.sleep(2)
        cpu_before = [cpu_seconds(r["process"].pid) for r in self.replicas] + [cpu_seconds(c["process"].pid) for c in clients]
        started = time.time()
        versions = []
        for _ in range(self.args.fleet_changes):
            versions.append(self.change()[0])
            time.sleep(self.args.gap)
        cpu_after = [cpu_seconds(r["process"].pid) for r in self.replicas] + [cpu_seconds(c["process"].pid) for c in clients]
        phase_seconds = time.time() - started
        rss = [rss_kib(r["process"].pid) for r in self.replicas]
        for c in clients:
            c["process"].wait(timeout=duration + 120)
        reports = [json.load(open(c["report"])) for c in clients]
        rows = []
        for version in versions:
            deliveries = [next((d for d in report["versions"] if d["version"] == version), None) for report in reports]
            if any(d is None for d in deliveries):
                rows.append({"version": version[:12], "missing": True})
                continue
            rows.append({
                "version": version[:12],
                "proxies": sum(d["proxiesAffected"] for d in deliveries),
                "acked": sum(d["acked"] for d in deliveries),
                "p50_worst_replica": max(d["publishToAck"]["p50"] for d in deliveries),
                "p99_worst_replica": max(d["publishToAck"]["p99"] for d in deliveries),
                "all_acked": max(d["publishToAck"]["max"] for d in deliveries),
            })
        n = len(self.replicas)
        return {"rows": rows, "replica_cpu": [cpu_after[i] - cpu_before[i] for i in range(n)],
                "loadgen_cpu": [cpu_after[n + i] - cpu_before[n + i] for i in range(n)], "seconds": phase_seconds,
                "replica_rss_kib": rss, "configured": [r["configuredProxies"] for r in reports]}

    def phase_memory(self):
        rows = []
        stored = lambda: len([line for line in subprocess.run([self.meshctl, "snapshot", "list", "--store", self.postgres.url],
                                                               capture_output=True, text=True, check=True).stdout.splitlines()[1:] if line.strip()])
        rows.append((stored(), [rss_kib(r["process"].pid) for r in self.replicas]))
        for step in range(2):
            subprocess.run([self.meshctl, "bench-fixture", "--store", self.postgres.url, "--clusters", str(self.args.clusters),
                            "--identity", self.identity, "--churn-per-second", "1000", "--churn-seconds", "600",
                            "--churn-versions", str(self.args.churn), "--revision", str(1 + step * self.args.churn)],
                           check=True, capture_output=True, timeout=600)
            time.sleep(3)
            rows.append((stored(), [rss_kib(r["process"].pid) for r in self.replicas]))
        return rows

    def run(self):
        try:
            self.publish()
            self.start_replicas()
            replicas = self.phase_replicas()
            fleet = self.phase_fleet()
            memory = self.phase_memory()
        finally:
            for replica in self.replicas:
                stop(replica["process"])
            self.postgres.stop()
        return replicas, fleet, memory


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshctl", default=".build/release/meshctl")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=50, help="EDS clusters in the benchmark mesh")
    parser.add_argument("--changes", type=int, default=50, help="one-cluster changes for publish → every replica serving")
    parser.add_argument("--proxies", type=int, default=1000, help="simulated proxies per replica")
    parser.add_argument("--fleet-changes", type=int, default=5, help="one-cluster changes with the proxies connected")
    parser.add_argument("--gap", type=float, default=4.0, help="seconds between those changes")
    parser.add_argument("--churn", type=int, default=500, help="versions published per memory step")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, reports)")
    args = parser.parse_args()
    bench = Bench(args)
    replicas, fleet, memory = bench.run()
    print(f"\n### {args.replicas} replicas on one PostgreSQL store ({args.clusters}-cluster benchmark mesh)\n")
    print("| publish → serving (one-cluster change) | p50 | p99 | max |")
    print("|---|---|---|---|")
    print(f"| every replica serving ({replicas['changes']} changes) | {replicas['all_p50']:.0f} ms | {replicas['all_p99']:.0f} ms | {replicas['all_max']:.0f} ms |")
    print(f"| one replica serving (all samples) | {replicas['each_p50']:.0f} ms | {replicas['each_p99']:.0f} ms | |")
    print(f"\n{args.replicas} × {args.proxies} simulated ADS proxies (one loadgen per replica; configured: {fleet['configured']})\n")
    print("| change | proxies ACKed | p50 (worst replica) | p99 (worst replica) | last proxy ACKed |")
    print("|---|---|---|---|---|")
    for row in fleet["rows"]:
        if row.get("missing"):
            print(f"| {row['version']} | not matched by every loadgen | | | |")
        else:
            print(f"| {row['version']} | {row['acked']}/{row['proxies']} | {row['p50_worst_replica']:.0f} ms | {row['p99_worst_replica']:.0f} ms | {row['all_acked']:.0f} ms |")
    print(f"\nCPU over the {fleet['seconds']:.0f} s of changes: replicas {', '.join(f'{c:.2f}' for c in fleet['replica_cpu'])} s; "
          f"loadgens {', '.join(f'{c:.2f}' for c in fleet['loadgen_cpu'])} s. "
          f"Replica RSS with {args.proxies} proxies each: {', '.join(f'{k / 1024:.0f}' for k in fleet['replica_rss_kib'])} MiB.\n")
    print("| versions in the store | replica RSS (MiB, idle) |")
    print("|---|---|")
    for count, rss in memory:
        print(f"| {count} | {', '.join(f'{k / 1024:.1f}' for k in rss)} |")
    if args.keep:
        print(f"\nwork directory: {bench.work}")
    else:
        shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""xDS server benchmark: connect storm, push fan-out (SotW vs delta), idle memory per proxy,
endpoint churn, and the nghttpd/h2load ceiling, all on loopback with bounded waits.

Runs `meshctl serve` and `meshctl loadgen` (release build) as separate processes, publishes
the synthetic benchmark mesh with the hidden `meshctl bench-fixture`, reads server RSS and
CPU from /proc/<pid>, and writes a Markdown section, the raw JSON and a PNG plot.

    python3 scripts/bench_xds.py --meshctl .build/release/meshctl --sizes 1000,5000,10000 \
        --markdown /tmp/bench.md --plot docs/bench-push-latency.png --plot-python .venv/bin/python
"""
import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def scrape(admin_port):
    """The server's /metrics as {(name, frozenset(labels)): value}; {} when unreachable."""
    import urllib.request
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        pairs = frozenset(tuple(item.split("=", 1)) for item in labels.rstrip("}").replace('"', "").split(",") if "=" in item)
        samples[(name, pairs)] = float(value)
    return samples


def metric_delta(before, after, name, **match):
    """Sum of `name` samples whose labels include `match`, after minus before."""
    def total(samples):
        return sum(v for (n, labels), v in samples.items() if n == name and all((k, str(x)) in labels for k, x in match.items()))
    return total(after) - total(before)


def histogram_quantile(before, after, name, q, **match):
    """Quantile (seconds) of a Prometheus histogram's increase between two scrapes, interpolated within buckets."""
    buckets = {}
    for (n, labels), v in after.items():
        if n != name + "_bucket" or not all((k, str(x)) in labels for k, x in match.items()):
            continue
        le = dict(labels)["le"]
        bound = float("inf") if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0) + v - before.get((n, labels), 0)
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank, previous_bound, previous_count = q * buckets[bounds[-1]], 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return previous_bound
            width = buckets[bound] - previous_count
            return previous_bound + (bound - previous_bound) * ((rank - previous_count) / width if width else 1)
        previous_bound, previous_count = bound, buckets[bound]
    return previous_bound


def stop(process, timeout=20):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Bench:
    def __init__(self, args):
        self.args = args
        self.meshctl = os.path.abspath(args.meshctl)
        self.work = tempfile.mkdtemp(prefix="meshctl-bench-xds-")
        self.certs = os.path.join(self.work, "certs")
        subprocess.run([self.meshctl, "certs", "init", "--out", self.certs, "--proxy", "loadgen"], check=True,
                       stdout=subprocess.DEVNULL)
        self.identity = "spiffe://mesh.local/proxy/loadgen"

    def fixture(self, store, *extra, clusters=None):
        command = [self.meshctl, "bench-fixture", "--store", store, "--clusters", str(clusters or self.args.clusters),
                   "--identity", self.identity, *extra]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=300).stdout.strip()

    def server_command(self):
        """meshctl, or under --callgrind meshctl inside valgrind, instrumentation off until the changes. Valgrind 3.19
        cannot read the Swift toolchain's DWARF, so it runs a copy without debug sections (symbols stay)."""
        if not getattr(self.args, "callgrind", False):  # bench_storms.py reuses Bench with its own options
            return [self.meshctl]
        stripped = os.path.join(self.work, "meshctl-for-callgrind")
        if not os.path.exists(stripped):
            subprocess.run(["objcopy", "--strip-debug", self.meshctl, stripped], check=True)
        return ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={os.path.join(self.work, 'callgrind.%p.out')}", stripped]

    def serve(self, store, proxies, port=None):
        port = port or free_port()
        self.admin_port = free_port()
        log = open(os.path.join(self.work, f"serve-{port}.log"), "w")
        process = subprocess.Popen(
            self.server_command() + ["serve", "--store", store, "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{self.admin_port}",
             "--tls-cert", f"{self.certs}/server.crt", "--tls-key", f"{self.certs}/server.key",
             "--client-ca", f"{self.certs}/ca.crt", "--threads", str(self.args.server_threads),
             "--max-connections", str(proxies + 1000), "--drain-seconds", "1"],
            stdout=log, stderr=subprocess.STDOUT)
        startup = 300 if getattr(self.args, "callgrind", False) else 30
        if not wait_port(port, startup):
            stop(process)
            raise SystemExit(f"meshctl serve did not start listening within {startup} s")
        return process, port

    def loadgen(self, port, store, proxies, mode, duration, json_path, ready_path, connections=None, extra=()):
        command = [self.args.loadgen_meshctl or self.meshctl, "loadgen", "--server", f"127.0.0.1:{port}", "--ca", f"{self.certs}/ca.crt",
                   "--cert", f"{self.certs}/loadgen.crt", "--key", f"{self.certs}/loadgen.key",
                   "--proxies", str(proxies), "--connections", str(connections or proxies), "--mode", mode,
                   "--duration", str(duration), "--store", store, "--json", json_path, "--ready-file", ready_path,
                   "--threads", str(self.args.client_threads), *extra]
        log = open(json_path + ".log", "w")
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def callgrind_instructions(self, pid):
        """Stops counting, dumps the server's counts and returns the instructions counted since `--zero`."""
        subprocess.run(["callgrind_control", "--instr=off", str(pid)], check=True, stdout=subprocess.DEVNULL)
        before = set(glob.glob(os.path.join(self.work, f"callgrind.{pid}.out.*")))
        subprocess.run(["callgrind_control", "--dump=changes", str(pid)], check=True, stdout=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            dumps = set(glob.glob(os.path.join(self.work, f"callgrind.{pid}.out.*"))) - before
            for dump in dumps:
                with open(dump) as f:
                    for line in f:
                        # The last line, once the dump is complete ("summary:" at the top reads 0 when counting was
                        # switched on mid-run).
                        if line.startswith("totals:"):
                            keep = getattr(self.args, "callgrind_keep", None)
                            if keep:  # for callgrind_annotate: where the instructions of the changes went
                                os.makedirs(keep, exist_ok=True)
                                shutil.copy(dump, os.path.join(keep, os.path.basename(dump)))
                            return int(line.split()[1])
            time.sleep(0.2)
        raise SystemExit("callgrind wrote no counts for the changes")

    def wait_file(self, path, process, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(path):
                return True
            if process.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def fanout(self, proxies, mode):
        """Connect storm, idle RSS, then `changes` one-cluster changes; returns the measured row."""
        store = os.path.join(self.work, f"store-{mode}-{proxies}")
        self.fixture(store)
        server, port = self.serve(store, proxies)
        try:
            time.sleep(0.5)
            rss_before = rss_kib(server.pid)
            json_path = os.path.join(self.work, f"loadgen-{mode}-{proxies}.json")
            ready = json_path + ".ready"
            budget = 60 + proxies / 50
            started = time.time()
            server_cpu_start = cpu_seconds(server.pid)
            client = self.loadgen(port, store, proxies, mode, budget + self.args.changes * 10 + 30, json_path, ready)
            configured = self.wait_file(ready, client, budget)
            storm_seconds = time.time() - started
            row = {"proxies": proxies, "mode": mode, "configured": configured, "storm_seconds": round(storm_seconds, 2)}
            if client.poll() is None:
                # Both sides of the storm: the load generator shares the cores, so its cost is part of the picture.
                row["server_cpu_seconds_storm"] = round(cpu_seconds(server.pid) - server_cpu_start, 2)
                row["loadgen_cpu_seconds_storm"] = round(cpu_seconds(client.pid), 2)
            if configured:
                time.sleep(2)
                rss_idle = rss_kib(server.pid)
                row["server_rss_before_kib"] = rss_before
                row["server_rss_idle_kib"] = rss_idle
                row["rss_per_proxy_kib"] = round((rss_idle - rss_before) / proxies, 1)
                cpu_before, client_cpu_before = cpu_seconds(server.pid), cpu_seconds(client.pid)
                metrics_before = scrape(self.admin_port)
                gap = max(2.0, proxies / 2000)
                profiler = None
                if self.args.profile_changes:
                    # The server's push path alone: perf samples only the changes, not the storm before them.
                    profiler = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-p", str(server.pid), "-o",
                                                 f"{self.args.profile_changes}-{mode}-{proxies}.perf"],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(0.5)
                if self.args.callgrind:
                    # Instructions the server executes during the changes (user space, every thread): unlike CPU time
                    # they hardly move with the machine's load, so two builds compare on one run each.
                    subprocess.run(["callgrind_control", "--zero", str(server.pid)], check=True, stdout=subprocess.DEVNULL)
                    subprocess.run(["callgrind_control", "--instr=on", str(server.pid)], check=True, stdout=subprocess.DEVNULL)
                for change in range(1, self.args.changes + 1):
                    self.fixture(store, "--change-cluster", str(change % self.args.clusters), "--revision", str(change))
                    time.sleep(gap)
                row["server_cpu_seconds_during_changes"] = round(cpu_seconds(server.pid) - cpu_before, 2)
                row["loadgen_cpu_seconds_during_changes"] = round(cpu_seconds(client.pid) - client_cpu_before, 2)
                if profiler:
                    profiler.send_signal(signal.SIGINT)
                    profiler.wait(timeout=60)
                if self.args.callgrind:
                    row["server_instructions_per_change"] = self.callgrind_instructions(server.pid) // self.args.changes
                metrics_after = scrape(self.admin_port)
                if metrics_after:
                    def ms(value):
                        return round(value * 1000, 1) if value is not None else None
                    row["server_metrics"] = {
                        "connected_proxies": metric_delta({}, metrics_after, "meshctl_connected_proxies"),
                        "pushes": metric_delta(metrics_before, metrics_after, "meshctl_xds_pushes_total"),
                        "bytes_sent": metric_delta(metrics_before, metrics_after, "meshctl_xds_sent_bytes_total"),
                        "nacks": metric_delta(metrics_before, metrics_after, "meshctl_xds_nacks_total"),
                        "publish_to_send_p50_ms": ms(histogram_quantile(metrics_before, metrics_after, "meshctl_xds_push_latency_seconds", 0.5, phase="publish_to_send")),
                        "publish_to_send_p99_ms": ms(histogram_quantile(metrics_before, metrics_after, "meshctl_xds_push_latency_seconds", 0.99, phase="publish_to_send")),
                        "send_to_ack_p50_ms": ms(histogram_quantile(metrics_before, metrics_after, "meshctl_xds_push_latency_seconds", 0.5, phase="send_to_ack")),
                        "send_to_ack_p99_ms": ms(histogram_quantile(metrics_before, metrics_after, "meshctl_xds_push_latency_seconds", 0.99, phase="send_to_ack")),
                        "event_loop_lag_p99_ms": ms(histogram_quantile(metrics_before, metrics_after, "meshctl_event_loop_lag_seconds", 0.99)),
                    }
            client.send_signal(signal.SIGINT)
            try:
                client.wait(timeout=120)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
            row["loadgen_exit"] = client.returncode
            if os.path.exists(json_path):
                with open(json_path) as f:
                    row["report"] = json.load(f)
            return row
        finally:
            stop(server)

    def churn(self, proxies):
        store = os.path.join(self.work, f"store-churn-{proxies}")
        self.fixture(store, clusters=100)
        server, port = self.serve(store, proxies)
        try:
            json_path = os.path.join(self.work, f"loadgen-churn-{proxies}.json")
            ready = json_path + ".ready"
            client = self.loadgen(port, store, proxies, "ads", 120 + self.args.churn_seconds, json_path, ready,
                                  connections=max(1, proxies // 50) if self.args.churn_shared_connections else None)
            row = {"proxies": proxies, "configured": self.wait_file(ready, client, 90)}
            if row["configured"]:
                cpu_before, wall_before = cpu_seconds(server.pid), time.time()
                out = self.fixture(store, "--churn-per-second", "10", "--churn-seconds", str(self.args.churn_seconds),
                                   clusters=100)
                time.sleep(2)
                row["server_cpu_percent"] = round(100 * (cpu_seconds(server.pid) - cpu_before) / (time.time() - wall_before), 1)
                row["publisher"] = out
            client.send_signal(signal.SIGINT)
            try:
                client.wait(timeout=120)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
            if os.path.exists(json_path):
                with open(json_path) as f:
                    row["report"] = json.load(f)
            return row
        finally:
            stop(server)

    def envoys(self, count, envoy):
        """`count` real Envoys on ADS; a one-cluster change is published and each Envoy's admin endpoint polled
        until the new connect_timeout is active: publish (command start) → applied, per Envoy."""
        import threading
        import urllib.request
        store = os.path.join(self.work, "store-envoy")
        self.fixture(store)
        server, port = self.serve(store, count)
        processes = []
        try:
            admin_ports = []
            for i in range(count):
                admin = free_port()
                admin_ports.append(admin)
                bootstrap = subprocess.run(
                    [self.meshctl, "bootstrap", "--node-id", f"envoy-{i}", "--node-cluster", "default",
                     "--server", f"127.0.0.1:{port}", "--cert", f"{self.certs}/loadgen.crt", "--key", f"{self.certs}/loadgen.key",
                     "--ca", f"{self.certs}/ca.crt", "--server-name", "localhost", "--admin-port", str(admin)],
                    check=True, capture_output=True, text=True).stdout
                path = os.path.join(self.work, f"envoy-{i}.yaml")
                with open(path, "w") as f:
                    f.write(bootstrap)
                log = open(path + ".log", "w")
                processes.append(subprocess.Popen([envoy, "-c", path, "--base-id", str(1000 + i), "-l", "error",
                                                   "--concurrency", "1"], stdout=log, stderr=subprocess.STDOUT))

            def dump(admin):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/config_dump?resource=dynamic_active_clusters", timeout=2) as r:
                        return r.read().decode()
                except OSError:
                    return ""

            deadline = time.time() + 120
            pending = set(admin_ports)
            while pending and time.time() < deadline:
                pending = {a for a in pending if f"svc-{self.args.clusters - 1}" not in dump(a)}
                time.sleep(0.2)
            if pending:
                return {"envoys": count, "error": f"{len(pending)} Envoys did not get the clusters within 120 s"}
            applied = {}
            marker = '"connect_timeout": "1.009s"'

            def watch(admin, start):
                end = start + 30
                while time.time() < end:
                    if marker in dump(admin):
                        applied[admin] = time.time()
                        return
                    time.sleep(0.01)

            start = time.time()
            threads = [threading.Thread(target=watch, args=(a, start)) for a in admin_ports]
            for t in threads:
                t.start()
            self.fixture(store, "--change-cluster", "7", "--revision", "9")
            published = time.time() - start
            for t in threads:
                t.join()
            # The moment the version went live: the store's history record (written as `current` moves).
            from datetime import datetime
            with open(os.path.join(store, "history.jsonl")) as f:
                live = datetime.fromisoformat(json.loads(f.read().splitlines()[-1])["time"].replace("Z", "+00:00")).timestamp()
            values = sorted((v - live) * 1000 for v in applied.values())
            row = {"envoys": count, "applied": len(values), "publish_command_ms": round(published * 1000, 1)}
            if values:
                row.update({"p50": values[len(values) // 2], "p99": values[min(len(values) - 1, int(len(values) * 0.99))],
                            "max": values[-1]})
            return row
        finally:
            for p in processes:
                stop(p, timeout=10)
            stop(server)

    def ceiling(self, connections, payload_bytes):
        """nghttpd serving `payload_bytes` over TLS to h2load with `connections` connections: responses/s."""
        if not shutil.which("nghttpd") or not shutil.which("h2load"):
            return {"error": "nghttpd/h2load not installed (Debian nghttp2-server, nghttp2-client)"}
        docroot = os.path.join(self.work, "htdocs")
        os.makedirs(docroot, exist_ok=True)
        with open(os.path.join(docroot, "payload"), "wb") as f:
            f.write(os.urandom(max(1, payload_bytes)))
        port = free_port()
        log = open(os.path.join(self.work, f"nghttpd-{port}.log"), "w")
        server = subprocess.Popen(["nghttpd", "-n", str(self.args.server_threads), "-d", docroot, str(port),
                                   f"{self.certs}/server.key", f"{self.certs}/server.crt"], stdout=log, stderr=subprocess.STDOUT)
        try:
            if not wait_port(port, 10):
                return {"error": "nghttpd did not start"}
            warm = max(3, int(connections / 1000 * 2))
            result = subprocess.run(
                ["h2load", "-c", str(connections), "-m", "1", "-t", str(self.args.client_threads), "-D", "5",
                 f"--warm-up-time={warm}", f"https://127.0.0.1:{port}/payload"],
                capture_output=True, text=True, timeout=warm + 120)
            row = {"connections": connections, "payload_bytes": payload_bytes}
            for line in result.stdout.splitlines():
                if line.startswith("finished in"):
                    # finished in 5.00s, 12345.60 req/s, 3.1MB/s
                    parts = line.split(",")
                    row["requests_per_second"] = float(parts[1].split()[0])
                if line.startswith("requests:"):
                    row["requests_line"] = line.strip()
            if "requests_per_second" not in row:
                row["error"] = (result.stdout + result.stderr)[-400:]
            return row
        finally:
            stop(server)


# go-control-plane v0.11.1 at 10,000 ADS proxies, measured side by side with meshctl on this machine by an independent
# run (issue #15's table); quoted beside meshctl's figures, never re-measured here.
PEER_REFERENCE = {
    (10000, "ads"): {"storm_s": 16.0, "storm_cpu_s": 16.6, "rss_kib": 163, "cpu_per_change_s": 5.94, "ack_p99_s": 5.49},
    (10000, "ads-sotw"): {"storm_s": 16.0, "storm_cpu_s": 16.6, "rss_kib": 163, "cpu_per_change_s": 5.94, "ack_p99_s": 5.49},
    (10000, "ads-delta"): {"storm_s": 19.1, "storm_cpu_s": 20.3, "rss_kib": 204, "cpu_per_change_s": 5.14, "ack_p99_s": 3.46},
}


def per_change(row, key):
    changes = len(row.get("report", {}).get("versions", [])) or None
    return f"{row[key] / changes:.2f} s" if key in row and changes else "—"


def summary(s):
    return f"{s['p50']:.0f} / {s['p99']:.0f} / {s['max']:.0f}" if s and s.get("count") else "—"


def markdown(results, args):
    if args.callgrind:
        lines = ["## Server instructions per one-cluster change — `make bench-instructions`", "",
                 "`scripts/bench_xds.py --callgrind`: meshctl serve under valgrind's callgrind, counting only during the "
                 f"changes (every thread, user space; the kernel's work is not counted), {args.changes} one-cluster changes, "
                 f"{args.clusters} EDS clusters per group; load generator outside valgrind.", "",
                 "| proxies | mode | instructions per change | per proxy |", "|---|---|---:|---:|"]
        for row in results["fanout"]:
            count = row.get("server_instructions_per_change")
            lines.append(f"| {row['proxies']:,} | {row['mode']} | {count:,} | {count // row['proxies']:,} |" if count
                         else f"| {row['proxies']:,} | {row['mode']} | — (not configured) | — |")
        return "\n".join(lines) + "\n"
    lines = ["## xDS server at scale — `make bench`", "",
             f"`scripts/bench_xds.py`: meshctl serve ({args.server_threads} loops) and meshctl loadgen "
             f"({args.client_threads} loops) as separate release processes on this 2-core machine, mutual TLS, one "
             f"connection per proxy, benchmark mesh of {args.clusters} EDS clusters + 1 listener + 1 route per group. "
             "Latencies are per proxy, in ms, from the snapshot's createdAt (made just before the store write).", "",
             "### Connect storm and idle cost", "",
             "The go-control-plane column is the published reference of issue #15 (envoyproxy/go-control-plane v0.11.1, its "
             "snapshot cache and gRPC server, same certificates, mesh and client, alternating runs on this machine, 10,000 "
             "proxies); it cannot be rebuilt here (no Go module registry), so it is quoted, not re-measured.", "",
             "| proxies | mode | all configured after | stream open → full config p50 / p99 / max | server RSS per idle proxy "
             "| CPU during the storm: server / loadgen | go-control-plane (reference): configured after, server CPU, RSS per proxy |",
             "|---|---|---|---|---|---|---|"]
    for row in results["fanout"]:
        report = row.get("report", {})
        peer = PEER_REFERENCE.get((row["proxies"], row["mode"]), {})
        peer_text = f"{peer['storm_s']} s, {peer['storm_cpu_s']} s, {peer['rss_kib']} KiB" if peer else "—"
        lines.append(f"| {row['proxies']:,} | {row['mode']} | {row['storm_seconds']:.1f} s"
                     f"{'' if row['configured'] else ' (NOT all configured)'} | {summary(report.get('timeToFullConfig'))} | "
                     f"{row.get('rss_per_proxy_kib', '—')} KiB | {row.get('server_cpu_seconds_storm', '—')} s / "
                     f"{row.get('loadgen_cpu_seconds_storm', '—')} s | {peer_text} |")
    lines += ["", "### Push fan-out of a one-cluster change", "",
              "| proxies | mode | changes | proxies reached | publish → receipt p50 / p99 / max | publish → ACK p50 / p99 / max "
              "| bytes per proxy per change | CPU per change: server / loadgen | go-control-plane (reference): server CPU per change, publish → ACK p99 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in results["fanout"]:
        report = row.get("report", {})
        versions = report.get("versions", [])
        reached = sum(v["acked"] for v in versions)
        affected = sum(v["proxiesAffected"] for v in versions)
        per_proxy = (sum(v["bytesDelivered"] for v in versions) / affected) if affected else 0
        lines.append(f"| {row['proxies']:,} | {row['mode']} | {len(versions)} | {reached:,} / {affected:,} | "
                     f"{summary(report.get('publishToReceipt'))} | {summary(report.get('publishToAck'))} | "
                     f"{per_proxy:,.0f} B | {per_change(row, 'server_cpu_seconds_during_changes')} / {per_change(row, 'loadgen_cpu_seconds_during_changes')} | "
                     + (f"{peer['cpu_per_change_s']} s, {peer['ack_p99_s']} s |" if (peer := PEER_REFERENCE.get((row['proxies'], row['mode']))) else "— |"))
    if any(row.get("server_metrics") for row in results["fanout"]):
        lines += ["", "### The same changes as the server's own metrics (/metrics, scraped before and after)", "",
                  "Latency quantiles are interpolated within histogram buckets (1, 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5, 10 s), "
                  "so they are coarse; publish → send is per response sent, send → ACK as the server reads the ACK.", "",
                  "| proxies | mode | connected | responses sent | bytes sent | NACKs | publish → send p50 / p99 (ms) | send → ACK p50 / p99 (ms) | loop lag p99 (ms) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in results["fanout"]:
            m = row.get("server_metrics")
            if not m:
                continue
            lines.append(f"| {row['proxies']:,} | {row['mode']} | {m['connected_proxies']:,.0f} | {m['pushes']:,.0f} | {m['bytes_sent']:,.0f} | "
                         f"{m['nacks']:,.0f} | {m['publish_to_send_p50_ms']} / {m['publish_to_send_p99_ms']} | "
                         f"{m['send_to_ack_p50_ms']} / {m['send_to_ack_p99_ms']} | {m['event_loop_lag_p99_ms']} |")
    if results.get("ceiling"):
        lines += ["", "### Fan-out throughput vs the nghttpd/h2load ceiling", "",
                  "Ceiling: the same bytes per proxy served by `nghttpd` (TLS, same loop count) to `h2load` with the same "
                  "number of connections, steady state after warm-up (responses/s). meshctl: proxies reached / max "
                  "publish→ACK, end to end (pushes/s, SotW), and in the fan-out phase alone: proxies reached / (last − first "
                  "receipt), which leaves out the store write and the server noticing the new version.", "",
                  "| proxies | payload | meshctl pushes/s end to end | meshctl pushes/s fan-out phase | nghttpd/h2load responses/s | ratio end to end | ratio fan-out phase |",
                  "|---|---|---|---|---|---|---|"]
        for row in results["ceiling"]:
            def ratio(value):
                return f"{value / row['requests_per_second']:.0%}" if row.get("requests_per_second") else row.get("error", "—")[:80].replace("\n", " ")
            lines.append(f"| {row['connections']:,} | {row['payload_bytes']:,} B | {row['meshctl_per_second']:,.0f} | "
                         f"{row['meshctl_fanout_per_second']:,.0f} | {row.get('requests_per_second', 0):,.0f} | "
                         f"{ratio(row['meshctl_per_second'])} | {ratio(row['meshctl_fanout_per_second'])} |")
    if results.get("envoy"):
        row = results["envoy"]
        lines += ["", "### Real Envoy", ""]
        if row.get("error"):
            lines.append(f"{row.get('envoys', '')} Envoy processes: {row['error']}")
        else:
            lines.append(f"{row['envoys']} Envoy 1.40 processes (ADS SotW, mTLS), one-cluster change; time from the version going live "
                         f"(the store's history record) to the new connect_timeout in each Envoy's /config_dump (20 pollers, every "
                         f"10 ms, so ±10 ms plus the admin endpoint's own latency): applied by {row['applied']} of "
                         f"{row['envoys']}, p50 {row.get('p50', 0):.0f} / p99 {row.get('p99', 0):.0f} / max {row.get('max', 0):.0f} ms.")
    if results.get("churn"):
        row = results["churn"]
        report = row.get("report", {})
        versions = report.get("versions", [])
        lines += ["", "### Endpoint churn", "",
                  f"100 clusters' endpoints moved 10×/s for {args.churn_seconds} s with {row['proxies']:,} SotW proxies: "
                  f"{len(versions)} versions published ({row.get('publisher', '')}); server CPU {row.get('server_cpu_percent', '—')} % "
                  f"of one core; delivered updates: publish → receipt {summary(report.get('publishToReceipt'))} ms "
                  f"(count {report.get('publishToReceipt', {}).get('count', 0):,}); versions superseded before reaching a proxy are not counted."]
    return "\n".join(lines) + "\n"


def plot(results, path, python):
    points = [{"proxies": r["proxies"], "mode": r["mode"], "p50": r["report"]["publishToAck"]["p50"],
               "p99": r["report"]["publishToAck"]["p99"]}
              for r in results["fanout"] if r.get("report", {}).get("publishToAck", {}).get("count")]
    script = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
points = json.loads(sys.argv[1])
fig, ax = plt.subplots(figsize=(6, 4))
for mode in sorted({p["mode"] for p in points}):
    xs = [p["proxies"] for p in points if p["mode"] == mode]
    for q, style in (("p50", "-o"), ("p99", "--s")):
        ax.plot(xs, [p[q] for p in points if p["mode"] == mode], style, label=f"{mode} {q}")
ax.set_xlabel("connected proxies (one mTLS connection each)")
ax.set_ylabel("publish → ACK (ms)")
ax.set_title("meshctl: one-cluster change fan-out")
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=120)
"""
    subprocess.run([python, "-c", script, json.dumps(points), path], check=True, timeout=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshctl", default=".build/release/meshctl")
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--modes", default="ads,ads-delta")
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--changes", type=int, default=3)
    parser.add_argument("--server-threads", type=int, default=2)
    parser.add_argument("--client-threads", type=int, default=2)
    parser.add_argument("--churn-proxies", type=int, default=1000)
    parser.add_argument("--churn-seconds", type=float, default=30)
    parser.add_argument("--churn-shared-connections", action="store_true")
    parser.add_argument("--loadgen-meshctl", default=None,
                        help="the meshctl binary that runs `loadgen` (default: --meshctl); to compare servers with one load generator")
    parser.add_argument("--skip-churn", action="store_true")
    parser.add_argument("--envoys", type=int, default=20)
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--profile-changes", default=None, metavar="PREFIX",
                        help="record the server with perf during the changes only, into PREFIX-MODE-PROXIES.perf")
    parser.add_argument("--callgrind", action="store_true",
                        help="run the server under valgrind's callgrind and count its instructions per change (make "
                             "bench-instructions); latency and CPU figures of such a run mean nothing")
    parser.add_argument("--callgrind-keep", metavar="DIR",
                        help="with --callgrind, copy each run's dump of the changes into DIR (read it with callgrind_annotate)")
    parser.add_argument("--markdown", default="-")
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default="docs/bench-push-latency.png")
    parser.add_argument("--plot-python", default=os.environ.get("MESHCTL_PYTHON", ".venv/bin/python"))
    args = parser.parse_args()

    bench = Bench(args)
    results = {"fanout": [], "ceiling": [], "churn": None, "envoy": None}
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            for mode in args.modes.split(","):
                print(f"[bench] fan-out: {size} proxies, {mode}", file=sys.stderr, flush=True)
                row = bench.fanout(size, mode)
                results["fanout"].append(row)
                report = row.get("report", {})
                print(f"[bench]   storm {row['storm_seconds']} s, rss/proxy {row.get('rss_per_proxy_kib')} KiB, "
                      f"publish→ACK {summary(report.get('publishToAck'))}"
                      + (f", {row.get('server_instructions_per_change'):,} instructions per change" if args.callgrind
                         and row.get('server_instructions_per_change') else ""), file=sys.stderr, flush=True)
            sotw = next((r for r in results["fanout"] if r["proxies"] == size and r["mode"] == "ads"), None)
            if not args.skip_ceiling and sotw and sotw.get("report", {}).get("versions"):
                versions = sotw["report"]["versions"]
                affected = sum(v["proxiesAffected"] for v in versions)
                payload = int(sum(v["bytesDelivered"] for v in versions) / affected) if affected else 0
                worst = [v["publishToAck"]["max"] for v in versions if v["publishToAck"]["count"]]
                reached = [v["acked"] for v in versions if v["publishToAck"]["count"]]
                print(f"[bench] ceiling: {size} connections, {payload} B", file=sys.stderr, flush=True)
                row = bench.ceiling(size, payload)
                spreads = [v["publishToReceipt"]["max"] - v["publishToReceipt"]["min"] for v in versions if v["publishToReceipt"]["count"]]
                row["meshctl_per_second"] = sum(reached) / (sum(worst) / 1000) if worst else 0
                row["meshctl_fanout_per_second"] = sum(reached) / (max(sum(spreads), 1) / 1000) if spreads else 0
                results["ceiling"].append(row)
        if args.envoys > 0:
            envoy = os.environ.get("MESHCTL_ENVOY", ".venv-envoy/bin/envoy")
            if os.path.exists(envoy):
                print(f"[bench] real Envoy: {args.envoys} processes", file=sys.stderr, flush=True)
                results["envoy"] = bench.envoys(args.envoys, envoy)
                print(f"[bench]   {results['envoy']}", file=sys.stderr, flush=True)
            else:
                results["envoy"] = {"error": f"no Envoy at {envoy} (set MESHCTL_ENVOY)"}
        if not args.skip_churn:
            print(f"[bench] churn: {args.churn_proxies} proxies", file=sys.stderr, flush=True)
            results["churn"] = bench.churn(args.churn_proxies)
    finally:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1, sort_keys=True)
        text = markdown(results, args)
        if args.markdown == "-":
            print(text)
        else:
            with open(args.markdown, "w") as f:
                f.write(text)
        if args.plot and os.path.exists(args.plot_python):
            try:
                plot(results, args.plot, args.plot_python)
            except Exception as error:  # the tables are the result; a missing plot is reported, not fatal
                print(f"[bench] plot failed: {error}", file=sys.stderr)
        shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()

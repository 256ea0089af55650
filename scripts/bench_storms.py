#!/usr/bin/env python3
"""Storms, churn and slow peers against a release `meshctl serve`, on loopback, bounded in count and time.

1. Reconnect storm: N simulated proxies (`meshctl loadgen --reconnect`) configured, the server killed (SIGKILL) and
   started again on the same port: time until every proxy is configured again, the new server's peak RSS, and
   whether any proxy was left unconfigured.
2. Churn soak (the leak test): C proxies connect and are churned (`--churn-per-second`) for S seconds. The server's
   RSS and open descriptors after a warm-up run of the same proxies (all disconnected) are the baseline; after the
   churn run (all disconnected again) they must be back within --rss-tolerance percent and --fd-tolerance
   descriptors. Exits 1 when they are not, so `make bench-storms` fails on a leak.
3. Proxies that never read: P normal proxies measure publish → ACK latency of one-cluster changes, once alone and
   once beside K clients that open an ADS stream, send their request and never read a byte. Reports the server's
   RSS growth per never-reading stream and both latency distributions.

    python3 scripts/bench_storms.py --meshctl .build/release/meshctl --markdown docs/bench-storms-latest.md
"""
import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_xds import Bench, rss_kib, stop, summary  # noqa: E402


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def last_progress(path):
    """The newest JSON line `meshctl loadgen --progress-file` wrote, or {}."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


def finish(client, timeout=120):
    """Ends a loadgen run early (SIGINT prints and writes its report) and returns its exit status."""
    if client.poll() is None:
        client.send_signal(signal.SIGINT)
    try:
        client.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        client.kill()
        client.wait()
    return client.returncode


def settle(pid, seconds):
    """Samples RSS every 0.5 s for `seconds` and returns the last value (after in-flight frees)."""
    value = rss_kib(pid)
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(0.5)
        value = rss_kib(pid)
    return value


class Storms(Bench):
    def reconnect_storm(self, proxies):
        store = os.path.join(self.work, f"store-storm-{proxies}")
        self.fixture(store)
        server, port = self.serve(store, proxies)
        json_path = os.path.join(self.work, f"loadgen-storm-{proxies}.json")
        progress = json_path + ".progress"
        ready = json_path + ".ready"
        budget = 60 + proxies / 50
        row = {"proxies": proxies}
        restarted = client = None
        try:
            # Inside the try: a load generator that fails to start must not leave the server running.
            client = self.loadgen(port, store, proxies, "ads", budget * 3 + 120, json_path, ready,
                                  extra=("--reconnect", "--progress-file", progress))
            connect_started = time.time()
            row["configured"] = self.wait_file(ready, client, budget)
            row["initial_connect_storm_seconds"] = round(time.time() - connect_started, 2)
            if not row["configured"]:
                return row
            time.sleep(1)
            row["rss_before_kill_kib"] = rss_kib(server.pid)
            server.kill()
            server.wait()
            killed_at = time.time()
            time.sleep(1)
            restarted, _ = self.serve(store, proxies, port=port)
            started_at = time.time()
            peak, configured_at, lost_seen = 0, None, False
            deadline = started_at + budget * 2
            while time.time() < deadline and client.poll() is None:
                peak = max(peak, rss_kib(restarted.pid))
                state = last_progress(progress)
                # First the proxies notice the kill (configured_now falls), then they come back.
                lost_seen = lost_seen or state.get("configured_now", proxies) < proxies
                if lost_seen and state.get("configured_now") == proxies:
                    configured_at = time.time()
                    break
                time.sleep(0.1)
            row["seconds_to_all_configured_after_restart"] = round(configured_at - started_at, 2) if configured_at else None
            row["seconds_from_kill"] = round(configured_at - killed_at, 2) if configured_at else None
            row["peak_rss_restarted_kib"] = peak
            row["rss_settled_kib"] = settle(restarted.pid, 3)
            row["progress"] = last_progress(progress)
        finally:
            if client is not None:
                row["loadgen_exit"] = finish(client)
            if os.path.exists(json_path):
                with open(json_path) as f:
                    report = json.load(f)
                row["left_unconfigured"] = proxies - report.get("configuredAtEnd", 0)
                row["failed_proxies"] = report.get("failedProxies")
                row["connections_lost"] = report.get("connectionsLost")
                row["reconnect_attempts"] = report.get("reconnects")
            stop(server)
            if restarted is not None:
                stop(restarted)
        return row

    def churn_soak(self, proxies, seconds, rate):
        store = os.path.join(self.work, f"store-soak-{proxies}")
        self.fixture(store, clusters=100)
        server, port = self.serve(store, proxies)
        row = {"proxies": proxies, "seconds": seconds, "churn_per_second": rate}
        try:
            time.sleep(0.5)
            row["rss_idle_start_kib"], row["fds_idle_start"] = rss_kib(server.pid), open_fds(server.pid)
            # Warm-up: the same proxies connect, get their configuration and leave (allocator pools, caches).
            json_path = os.path.join(self.work, f"loadgen-warmup-{proxies}.json")
            warm = self.loadgen(port, store, proxies, "ads", 60 + proxies / 50, json_path, json_path + ".ready")
            row["warmup_configured"] = self.wait_file(json_path + ".ready", warm, 60 + proxies / 50)
            row["rss_connected_kib"] = rss_kib(server.pid)
            finish(warm)
            row["rss_baseline_kib"] = settle(server.pid, 4)
            row["fds_baseline"] = open_fds(server.pid)
            # The soak: the same proxies, `rate` connections closed and reopened per second.
            json_path = os.path.join(self.work, f"loadgen-soak-{proxies}.json")
            progress = json_path + ".progress"
            soak = self.loadgen(port, store, proxies, "ads", seconds + 60 + proxies / 50, json_path, json_path + ".ready",
                                extra=("--churn-per-second", str(rate), "--progress-file", progress))
            row["soak_configured"] = self.wait_file(json_path + ".ready", soak, 60 + proxies / 50)
            peak_rss, peak_fds = 0, 0
            end = time.time() + seconds
            while time.time() < end and soak.poll() is None:
                peak_rss, peak_fds = max(peak_rss, rss_kib(server.pid)), max(peak_fds, open_fds(server.pid))
                time.sleep(0.5)
            row["peak_rss_during_churn_kib"], row["peak_fds_during_churn"] = peak_rss, peak_fds
            row["progress"] = last_progress(progress)
            finish(soak)
            if os.path.exists(json_path):
                with open(json_path) as f:
                    report = json.load(f)
                row["connections_churned"] = report.get("connectionsLost")
                row["failed_proxies"] = report.get("failedProxies")
            row["rss_after_kib"] = settle(server.pid, 4)
            row["fds_after"] = open_fds(server.pid)
            base = row["rss_baseline_kib"]
            row["rss_change_percent"] = round(100 * (row["rss_after_kib"] - base) / base, 1) if base else None
            row["fd_change"] = row["fds_after"] - row["fds_baseline"]
            row["leak_free"] = (row["rss_change_percent"] is not None and row["rss_change_percent"] <= self.args.rss_tolerance
                                and abs(row["fd_change"]) <= self.args.fd_tolerance)
            return row
        finally:
            stop(server)

    def never_reading(self, proxies, stuck, changes):
        store = os.path.join(self.work, f"store-stuck-{proxies}")
        self.fixture(store)
        server, port = self.serve(store, proxies + stuck)
        row = {"proxies": proxies, "never_reading": stuck, "changes": changes}
        sockets = []
        try:
            time.sleep(0.5)
            row["alone"] = self.push_latency(store, port, proxies, changes, "alone")
            row["rss_before_stuck_kib"] = rss_kib(server.pid)
            sockets = self.open_never_reading(port, stuck)
            row["never_reading_open"] = len(sockets)
            time.sleep(2)
            row["rss_with_stuck_kib"] = rss_kib(server.pid)
            row["beside_stuck"] = self.push_latency(store, port, proxies, changes, "beside")
            # The changes were pushed to the never-reading streams too: what is buffered for them now.
            row["rss_after_pushes_kib"] = settle(server.pid, 2)
            row["rss_per_stuck_stream_kib"] = round((row["rss_after_pushes_kib"] - row["rss_before_stuck_kib"]) / max(1, len(sockets)), 1)
            return row
        finally:
            for s in sockets:
                try:
                    s.close()
                except OSError:
                    pass
            stop(server)

    def push_latency(self, store, port, proxies, changes, label):
        json_path = os.path.join(self.work, f"loadgen-{label}-{proxies}.json")
        client = self.loadgen(port, store, proxies, "ads", 120 + changes * 5, json_path, json_path + ".ready",
                              connections=max(1, proxies // 10))
        configured = self.wait_file(json_path + ".ready", client, 90)
        if configured:
            for change in range(1, changes + 1):
                self.fixture(store, "--change-cluster", str(change % self.args.clusters), "--revision", str(int(time.time() * 1000) % 10**9))
                time.sleep(2)
        finish(client)
        if not os.path.exists(json_path):
            return {"configured": configured}
        with open(json_path) as f:
            report = json.load(f)
        return {"configured": configured, "publishToAck": report.get("publishToAck"), "publishToReceipt": report.get("publishToReceipt")}

    def open_never_reading(self, port, count):
        """`count` mTLS HTTP/2 connections, each with one ADS stream whose request is sent and whose answers are never
        read (the socket's receive buffer is shrunk so the server's writes back up early)."""
        import h2.config
        import h2.connection
        from envoy.service.discovery.v3 import discovery_pb2

        context = ssl.create_default_context(cafile=f"{self.certs}/ca.crt")
        context.load_cert_chain(f"{self.certs}/loadgen.crt", f"{self.certs}/loadgen.key")
        context.set_alpn_protocols(["h2"])
        request = discovery_pb2.DiscoveryRequest(type_url="type.googleapis.com/envoy.config.cluster.v3.Cluster")
        request.node.id = "never-reads"
        request.node.cluster = "default"
        body = request.SerializeToString()
        message = b"\x00" + len(body).to_bytes(4, "big") + body
        opened = []
        for index in range(count):
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.connect(("127.0.0.1", port))
            tls = context.wrap_socket(raw, server_hostname="localhost")
            connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            connection.initiate_connection()
            stream = connection.get_next_available_stream_id()
            connection.send_headers(stream, [(":method", "POST"), (":scheme", "https"), (":authority", "localhost"),
                                             (":path", "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"),
                                             ("content-type", "application/grpc"), ("te", "trailers")])
            connection.send_data(stream, message)
            tls.sendall(connection.data_to_send())
            opened.append(tls)
        return opened


def markdown(results, args):
    lines = ["# Storms, churn and slow peers (`make bench-storms`)", ""]
    storm = results.get("storm")
    if storm:
        lines += ["## Reconnect storm", "",
                  "| proxies | first connect storm (paced) | all configured again after restart | from the kill | peak RSS (restarted) | RSS settled | left unconfigured | failed | connections lost | reconnect attempts |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {storm['proxies']} | {storm.get('initial_connect_storm_seconds')} s | {storm.get('seconds_to_all_configured_after_restart')} s | {storm.get('seconds_from_kill')} s | "
                  f"{mib(storm.get('peak_rss_restarted_kib'))} | {mib(storm.get('rss_settled_kib'))} | {storm.get('left_unconfigured')} | "
                  f"{storm.get('failed_proxies')} | {storm.get('connections_lost')} | {storm.get('reconnect_attempts')} |", ""]
    soak = results.get("soak")
    if soak:
        lines += ["## Churn soak (leak test)", "",
                  "| proxies | churn | seconds | churned connections | RSS baseline | peak during churn | RSS after | change | fds baseline → peak → after | verdict |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
                  f"| {soak['proxies']} | {soak['churn_per_second']}/s | {soak['seconds']} | {soak.get('connections_churned')} | "
                  f"{mib(soak.get('rss_baseline_kib'))} | {mib(soak.get('peak_rss_during_churn_kib'))} | {mib(soak.get('rss_after_kib'))} | "
                  f"{soak.get('rss_change_percent')} % | {soak.get('fds_baseline')} → {soak.get('peak_fds_during_churn')} → {soak.get('fds_after')} | "
                  f"{'no leak' if soak.get('leak_free') else 'LEAK?'} |", ""]
    stuck = results.get("stuck")
    if stuck:
        def latency(part):
            return summary((stuck.get(part) or {}).get("publishToAck"))
        lines += ["## Proxies that never read", "",
                  f"{stuck['proxies']} normal proxies, {stuck.get('never_reading_open')} never-reading ADS streams, {stuck['changes']} one-cluster changes.", "",
                  "| | publish → ACK of the normal proxies (p50 / p99 / max ms) |", "|---|---|",
                  f"| alone | {latency('alone')} |", f"| beside the never-reading streams | {latency('beside_stuck')} |", "",
                  f"Server RSS: {mib(stuck.get('rss_before_stuck_kib'))} before the never-reading streams, "
                  f"{mib(stuck.get('rss_with_stuck_kib'))} with them, {mib(stuck.get('rss_after_pushes_kib'))} after the changes were pushed to them: "
                  f"{stuck.get('rss_per_stuck_stream_kib')} KiB per never-reading stream.", ""]
    lines += [f"Command: `{' '.join(sys.argv)}`", ""]
    return "\n".join(lines)


def mib(kib):
    return f"{kib / 1024:.0f} MiB" if isinstance(kib, (int, float)) else "—"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshctl", default=".build/release/meshctl")
    parser.add_argument("--loadgen-meshctl", default=None,
                        help="the meshctl binary that runs `loadgen` (default: --meshctl); to compare servers with one load generator")
    parser.add_argument("--storm-proxies", type=int, default=10000)
    parser.add_argument("--soak-proxies", type=int, default=2000)
    parser.add_argument("--soak-seconds", type=float, default=180)
    parser.add_argument("--soak-churn", type=float, default=100, help="connections closed and reopened per second")
    parser.add_argument("--rss-tolerance", type=float, default=5, help="percent above the baseline still counted as no leak")
    parser.add_argument("--fd-tolerance", type=int, default=2)
    parser.add_argument("--stuck-normal", type=int, default=1000)
    parser.add_argument("--stuck", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--server-threads", type=int, default=2)
    parser.add_argument("--client-threads", type=int, default=2)
    parser.add_argument("--only", default="storm,soak,stuck")
    parser.add_argument("--markdown", default="-")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    bench = Storms(args)
    results = {}
    only = set(args.only.split(","))
    try:
        if "storm" in only:
            print(f"[storms] reconnect storm: {args.storm_proxies} proxies", file=sys.stderr, flush=True)
            results["storm"] = bench.reconnect_storm(args.storm_proxies)
            print(f"[storms]   {results['storm']}", file=sys.stderr, flush=True)
        if "soak" in only:
            print(f"[storms] churn soak: {args.soak_proxies} proxies, {args.soak_churn}/s for {args.soak_seconds} s", file=sys.stderr, flush=True)
            results["soak"] = bench.churn_soak(args.soak_proxies, args.soak_seconds, args.soak_churn)
            print(f"[storms]   {results['soak']}", file=sys.stderr, flush=True)
        if "stuck" in only:
            print(f"[storms] never-reading: {args.stuck} beside {args.stuck_normal}", file=sys.stderr, flush=True)
            results["stuck"] = bench.never_reading(args.stuck_normal, args.stuck, args.changes)
            print(f"[storms]   {results['stuck']}", file=sys.stderr, flush=True)
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
        shutil.rmtree(bench.work, ignore_errors=True)
    soak = results.get("soak")
    if soak is not None and not soak.get("leak_free"):
        print(f"[storms] LEAK: RSS {soak.get('rss_change_percent')} % (tolerance {args.rss_tolerance} %), "
              f"descriptors {soak.get('fd_change'):+d} (tolerance {args.fd_tolerance}) after the churn", file=sys.stderr)
        sys.exit(1)
    storm = results.get("storm")
    if storm is not None and (storm.get("left_unconfigured") or not storm.get("seconds_to_all_configured_after_restart")):
        print("[storms] reconnect storm: proxies were left unconfigured", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""make bench-schema: meshctl's schema engine beside `envoy --mode validate`.

Generates an Envoy bootstrap with N clusters and N virtual hosts (one route each,
to its own cluster), then times, in the same run and alternating,
  meshctl validate --envoy FILE      (parse, full schema + constraints, cross-references)
  meshctl schema encode --type Bootstrap FILE   (the same, plus deterministic encoding)
  envoy --mode validate -c FILE
and prints the median wall time and peak RSS of each, and the ratio.

Usage: bench_schema.py --meshctl BIN --envoy BIN [--clusters N] [--runs R] [--markdown FILE]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def bootstrap(n):
    lines = ["node: {id: bench, cluster: bench}",
             "admin:", "  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}",
             "static_resources:", "  listeners:", "  - name: ingress",
             "    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}",
             "    filter_chains:", "    - filters:", "      - name: envoy.filters.network.http_connection_manager",
             "        typed_config:",
             '          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
             "          stat_prefix: ingress", "          http_filters:", "          - name: envoy.filters.http.router",
             "            typed_config:", '              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
             "          route_config:", "            name: routes", "            virtual_hosts:"]
    for i in range(n):
        lines += [f"            - name: vh{i}", f"              domains: [\"svc{i}.mesh.local\", \"svc{i}.mesh.local:80\"]",
                  "              routes:", "              - match: {prefix: \"/\"}",
                  f"                route: {{cluster: svc{i}, timeout: 2s, retry_policy: {{retry_on: \"5xx,connect-failure\", num_retries: 2, per_try_timeout: 0.5s}}}}"]
    lines.append("  clusters:")
    for i in range(n):
        lines += [f"  - name: svc{i}", "    type: STATIC", "    connect_timeout: 0.25s", "    lb_policy: LEAST_REQUEST",
                  "    circuit_breakers: {thresholds: [{max_connections: 1024, max_pending_requests: 1024}]}",
                  "    outlier_detection: {consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s}",
                  "    load_assignment:", f"      cluster_name: svc{i}", "      endpoints:", "      - lb_endpoints:"]
        for e in range(3):
            lines.append(f"        - endpoint: {{address: {{socket_address: {{address: 10.{(i >> 8) & 255}.{i & 255}.{e + 1}, port_value: 8080}}}}}}")
    return "\n".join(lines) + "\n"


def measure(command):
    """Wall time and peak RSS (KiB) of one run of command, via wait4."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}): {stderr[-1500:]}")
    return elapsed, usage.ru_maxrss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--meshctl", required=True)
    parser.add_argument("--envoy", required=True)
    parser.add_argument("--clusters", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bootstrap.yaml")
        with open(path, "w") as f:
            f.write(bootstrap(args.clusters))
        size = os.path.getsize(path)
        commands = {
            "meshctl validate --envoy": [args.meshctl, "validate", "--envoy", path],
            "meshctl schema encode": [args.meshctl, "schema", "encode", "--type", "envoy.config.bootstrap.v3.Bootstrap", path],
            "envoy --mode validate": [args.envoy, "--mode", "validate", "-c", path, "-l", "critical", "--disable-hot-restart"],
        }
        results = {name: [] for name in commands}
        for _ in range(args.runs):  # alternate, so machine noise hits all three alike
            for name, command in commands.items():
                results[name].append(measure(command))
    rows = []
    envoy_time = statistics.median(t for t, _ in results["envoy --mode validate"])
    for name, samples in results.items():
        wall = statistics.median(t for t, _ in samples)
        rss = max(r for _, r in samples) / 1024
        rows.append((name, wall, rss, envoy_time / wall))
    header = f"bootstrap: {args.clusters} clusters (3 endpoints each) + {args.clusters} virtual hosts, {size / 1e6:.1f} MB YAML; median of {args.runs} alternating runs"
    table = ["| command | median wall time | peak RSS | speed vs envoy --mode validate |", "|---|---|---|---|"]
    for name, wall, rss, ratio in rows:
        table.append(f"| `{name}` | {wall:.2f} s | {rss:.0f} MiB | {ratio:.1f}× |")
    print(header)
    print("\n".join(table))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(header + "\n\n" + "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

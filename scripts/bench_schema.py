#!/usr/bin/env python3
"""make bench-schema: meshctl's schema engine beside `envoy --mode validate`, on several shapes.

Generates Envoy bootstraps of the shapes large configurations take, then times, in the same run and
alternating (so machine noise hits all alike),
  meshctl validate --envoy FILE                 (parse, full schema + constraints, cross-references)
  meshctl schema encode --type Bootstrap FILE   (the same, plus deterministic encoding)
  envoy --mode validate -c FILE
on every core and again pinned to one core (`taskset -c 0`), and prints the median wall time and
peak RSS of each and the ratio to Envoy.

Shapes (N = --clusters, 10,000 by default):
  mixed      N STATIC clusters (3 endpoints, circuit breakers, outlier detection) + N virtual hosts
             (two domains, a route with timeout and retry policy) — the original benchmark
  clusters   2N clusters only, EDS-free STRICT_DNS/STATIC mixes with health checks and TLS to upstreams
  vhosts     2N virtual hosts each with three routes (prefix, regex, header match) and retry policies
  listeners  N/10 listeners, each with 5 filter chains (SNI/port matches) and an HTTP connection manager

With --baseline BIN (another meshctl build, e.g. of the commit before a change), its
`validate --envoy` joins the same alternation and the table gains its median and the new/old ratio:
an A/B comparison that machine noise hits alike.

Usage: bench_schema.py --meshctl BIN --envoy BIN [--baseline BIN] [--clusters N] [--runs R] [--shapes a,b] [--no-one-core] [--markdown FILE]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


HEAD = ["node: {id: bench, cluster: bench}",
        "admin:", "  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}",
        "static_resources:"]
ROUTER = ["          http_filters:", "          - name: envoy.filters.http.router",
          "            typed_config:", '              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router']
HCM = '"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager'


def static_cluster(i, lines):
    lines += [f"  - name: svc{i}", "    type: STATIC", "    connect_timeout: 0.25s", "    lb_policy: LEAST_REQUEST",
              "    circuit_breakers: {thresholds: [{max_connections: 1024, max_pending_requests: 1024}]}",
              "    outlier_detection: {consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s}",
              "    load_assignment:", f"      cluster_name: svc{i}", "      endpoints:", "      - lb_endpoints:"]
    for e in range(3):
        lines.append(f"        - endpoint: {{address: {{socket_address: {{address: 10.{(i >> 8) & 255}.{i & 255}.{e + 1}, port_value: 8080}}}}}}")


def one_listener(vhost_lines):
    return (["  listeners:", "  - name: ingress", "    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}",
             "    filter_chains:", "    - filters:", "      - name: envoy.filters.network.http_connection_manager",
             "        typed_config:", "          " + HCM, "          stat_prefix: ingress"] + ROUTER
            + ["          route_config:", "            name: routes", "            virtual_hosts:"] + vhost_lines)


def mixed(n):
    vhosts = []
    for i in range(n):
        vhosts += [f"            - name: vh{i}", f"              domains: [\"svc{i}.mesh.local\", \"svc{i}.mesh.local:80\"]",
                   "              routes:", "              - match: {prefix: \"/\"}",
                   f"                route: {{cluster: svc{i}, timeout: 2s, retry_policy: {{retry_on: \"5xx,connect-failure\", num_retries: 2, per_try_timeout: 0.5s}}}}"]
    lines = HEAD + one_listener(vhosts) + ["  clusters:"]
    for i in range(n):
        static_cluster(i, lines)
    return lines


def clusters(n):
    lines = HEAD + ["  clusters:"]
    for i in range(2 * n):
        if i % 2:
            static_cluster(i, lines)
            continue
        lines += [f"  - name: svc{i}", "    type: STRICT_DNS", "    connect_timeout: 1s", "    dns_lookup_family: V4_ONLY",
                  "    health_checks: [{timeout: 1s, interval: 5s, unhealthy_threshold: 3, healthy_threshold: 2, http_health_check: {path: /healthz}}]",
                  "    transport_socket:", "      name: envoy.transport_sockets.tls", "      typed_config:",
                  '        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
                  f"        sni: svc{i}.internal",
                  "    load_assignment:", f"      cluster_name: svc{i}",
                  f"      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: svc{i}.internal, port_value: 443}}}}}}}}]}}]"]
    return lines


def vhosts(n):
    entries = []
    for i in range(2 * n):
        retry = '{retry_on: "5xx,reset,connect-failure,retriable-status-codes", retriable_status_codes: [503], num_retries: 3, per_try_timeout: 0.5s, retry_back_off: {base_interval: 0.025s, max_interval: 0.25s}}'
        entries += [f"            - name: vh{i}", f"              domains: [\"app{i}.example.com\"]", "              routes:",
                    f"              - match: {{prefix: \"/api/v{i % 3}/\"}}", f"                route: {{cluster: app, timeout: 3s, retry_policy: {retry}}}",
                    f"              - match: {{safe_regex: {{regex: \"/items/[0-9]+/{i}\"}}}}", f"                route: {{cluster: app, retry_policy: {retry}}}",
                    "              - match: {prefix: \"/\", headers: [{name: x-canary, string_match: {exact: \"true\"}}]}",
                    "                route: {cluster: app, timeout: 10s}"]
    lines = HEAD + one_listener(entries) + ["  clusters:"]
    static_cluster(0, lines)
    lines[-10] = "  - name: app"
    lines[-6] = "      cluster_name: app"
    return lines


def listeners(n):
    lines = HEAD + ["  listeners:"]
    for l in range(max(1, n // 10)):
        lines += [f"  - name: listener{l}", f"    address: {{socket_address: {{address: 127.0.0.1, port_value: {10000 + l}}}}}",
                  "    listener_filters: [{name: envoy.filters.listener.tls_inspector, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]",
                  "    filter_chains:"]
        for c in range(5):
            lines += [f"    - filter_chain_match: {{server_names: [\"s{c}.l{l}.example.com\"]}}", "      filters:",
                      "      - name: envoy.filters.network.http_connection_manager", "        typed_config:", "          " + HCM,
                      f"          stat_prefix: l{l}c{c}", "          use_remote_address: true"] + ROUTER + [
                      "          route_config:", f"            name: l{l}c{c}",
                      f"            virtual_hosts: [{{name: all, domains: [\"*\"], routes: [{{match: {{prefix: \"/\"}}, route: {{cluster: svc{(l * 5 + c) % 100}, timeout: 5s}}}}]}}]"]
    lines.append("  clusters:")
    for i in range(100):
        static_cluster(i, lines)
    return lines


SHAPES = {"mixed": mixed, "clusters": clusters, "vhosts": vhosts, "listeners": listeners}


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
    parser.add_argument("--baseline", help="a second meshctl binary whose `validate --envoy` is timed in the same alternation")
    parser.add_argument("--clusters", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--no-one-core", action="store_true", help="skip the runs pinned to one core")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    pins = [("all cores", [])] + ([] if args.no_one_core else [("one core", ["taskset", "-c", "0"])])
    table = ["| shape | size | cores | `meshctl validate --envoy` | `meshctl schema encode` | `envoy --mode validate` | validate ratio | encode ratio | peak RSS meshctl / Envoy |"
             + (" baseline `validate --envoy` | new / baseline |" if args.baseline else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if args.baseline else "")]
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            path = os.path.join(tmp, f"{shape}.yaml")
            with open(path, "w") as f:
                f.write("\n".join(SHAPES[shape](args.clusters)) + "\n")
            size = os.path.getsize(path)
            for pin_name, pin in pins:
                commands = {
                    "validate": pin + [args.meshctl, "validate", "--envoy", path],
                    "encode": pin + [args.meshctl, "schema", "encode", "--type", "envoy.config.bootstrap.v3.Bootstrap", path],
                    "envoy": pin + [args.envoy, "--mode", "validate", "-c", path, "-l", "critical", "--disable-hot-restart"],
                }
                if args.baseline:
                    commands["baseline"] = pin + [args.baseline, "validate", "--envoy", path]
                results = {name: [] for name in commands}
                for _ in range(args.runs):  # alternate, so machine noise hits all three alike
                    for name, command in commands.items():
                        results[name].append(measure(command))
                wall = {name: statistics.median(t for t, _ in samples) for name, samples in results.items()}
                rss = {name: max(r for _, r in samples) / 1024 for name, samples in results.items()}
                row = (f"| {shape} | {size / 1e6:.1f} MB | {pin_name} | {wall['validate']:.2f} s | {wall['encode']:.2f} s | {wall['envoy']:.2f} s "
                       f"| {wall['envoy'] / wall['validate']:.1f}× | {wall['envoy'] / wall['encode']:.1f}× | {rss['validate']:.0f} / {rss['envoy']:.0f} MiB |")
                if args.baseline:
                    row += f" {wall['baseline']:.2f} s | {wall['validate'] / wall['baseline']:.2f} |"
                table.append(row)
                print(row, flush=True)
    header = f"median of {args.runs} alternating runs per row; N = {args.clusters}"
    print(header)
    print("\n".join(table))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(header + "\n\n" + "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

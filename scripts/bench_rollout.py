#!/usr/bin/env python3
"""Progressive rollout figures for docs/BENCHMARKS.md (`make bench-rollout`).

Runs `meshctl serve` and `meshctl loadgen` (simulated proxies over mTLS) as separate processes on
loopback and publishes the synthetic benchmark mesh (`meshctl bench-fixture`):

1. clean: a one-cluster change published `immediate` and then with waves (1, 10%, 100%) and a bake
   time; publish → last proxy received it (loadgen's per-version receipts), and the rollout's
   own start → completed (its state in the store). The difference is what a rollout adds.
2. nack: every simulated proxy NACKs every response after its first configuration
   (`loadgen --nack-rate 1`); a change published with waves: how many proxies received the bad
   version, the canary's NACK → the rollback recorded in the store's history, and → the server
   serving the previous version again (its log). The same change published `immediate` for
   comparison: how many proxies received it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_xds import free_port, stop, wait_port  # noqa: E402  (the same process helpers as make bench)


def log_time(text):
    # 2026-12-04T22:10:01.123+0000
    return datetime.strptime(text[:23] + text[23:].replace(":", ""), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class Bench:
    def __init__(self, args):
        self.args = args
        self.meshctl = os.path.abspath(args.meshctl)
        self.work = tempfile.mkdtemp(prefix="meshctl-bench-rollout-")
        self.certs = os.path.join(self.work, "certs")
        subprocess.run([self.meshctl, "certs", "init", "--out", self.certs, "--proxy", "loadgen"], check=True, stdout=subprocess.DEVNULL)
        self.identity = "spiffe://mesh.local/proxy/loadgen"

    def fixture(self, store, *extra):
        command = [self.meshctl, "bench-fixture", "--store", store, "--clusters", str(self.args.clusters), "--identity", self.identity, *extra]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=300).stdout.strip()

    def run(self, name, waves, nack_rate):
        """One server + loadgen run: the first version, then one change (with `waves` or immediate)."""
        store = os.path.join(self.work, f"store-{name}")
        rollout = ["--rollout-waves", waves, "--rollout-bake-ms", str(self.args.bake_ms)] if waves else []
        self.fixture(store, *rollout)
        port = free_port()
        server_log = os.path.join(self.work, f"serve-{name}.log")
        server = subprocess.Popen([self.meshctl, "serve", "--store", store, "--listen", f"127.0.0.1:{port}",
                                   "--tls-cert", f"{self.certs}/server.crt", "--tls-key", f"{self.certs}/server.key",
                                   "--client-ca", f"{self.certs}/ca.crt", "--max-connections", str(self.args.proxies + 100),
                                   "--drain-seconds", "1"], stdout=open(server_log, "w"), stderr=subprocess.STDOUT)
        if not wait_port(port, 30):
            stop(server)
            raise SystemExit("meshctl serve did not listen within 30 s")
        report_path = os.path.join(self.work, f"loadgen-{name}.json")
        ready = os.path.join(self.work, f"ready-{name}")
        duration = self.args.bake_ms / 1000 * 4 + 60
        client = subprocess.Popen([self.meshctl, "loadgen", "--server", f"127.0.0.1:{port}", "--ca", f"{self.certs}/ca.crt",
                                   "--cert", f"{self.certs}/loadgen.crt", "--key", f"{self.certs}/loadgen.key",
                                   "--proxies", str(self.args.proxies), "--duration", str(duration), "--store", store,
                                   "--json", report_path, "--ready-file", ready, "--nack-rate", str(nack_rate)],
                                  stdout=open(report_path + ".log", "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while not os.path.exists(ready) and time.time() < deadline and client.poll() is None:
            time.sleep(0.1)
        if not os.path.exists(ready):
            stop(client), stop(server)
            raise SystemExit(f"{name}: the simulated proxies were not configured within 120 s")
        time.sleep(1)
        published = time.time()
        version = self.fixture(store, "--change-cluster", "1", "--revision", "1", *rollout)
        row = {"name": name, "waves": waves or "immediate", "proxies": self.args.proxies, "bake_ms": self.args.bake_ms if waves else 0}
        state_path = os.path.join(store, "rollout", "state.json")
        if waves:
            wait = subprocess.run([self.meshctl, "rollout", "status", "--store", store, "--version", version, "--wait",
                                   "--timeout", str(self.args.bake_ms / 1000 * 4 + 60)], capture_output=True, text=True)
            row["rollout_exit"] = wait.returncode
            state = json.load(open(state_path))
            row["phase"] = state["phase"]
            if state.get("finishedAt"):
                row["rollout_start_to_end_ms"] = state["finishedAt"] - state["startedAt"]
            if state.get("failure"):
                failure = state["failure"]
                row["failure"] = failure["kind"] + " by " + failure["proxy"]["node"]
                history = [json.loads(line) for line in open(os.path.join(store, "history.jsonl")) if line.strip()]
                rollback = next((h for h in reversed(history) if h["kind"] == "rollback"), None)
                if rollback:
                    rolled = datetime.fromisoformat(rollback["time"].replace("Z", "+00:00")).timestamp()
                    row["nack_to_rollback_recorded_ms"] = round(rolled * 1000 - failure["at"], 1)
                time.sleep(1)
                # The server's log: the previous version loaded again after the rollback (the canary was handed it
                # back before that, when the rollout failed).
                for line in open(server_log):
                    if " snapshot.loaded " in line and "version=" + state["previous"][:12] in line:
                        row["nack_to_previous_served_ms"] = round(log_time(line.split(" ")[0]) * 1000 - failure["at"], 1)
        else:
            time.sleep(self.args.bake_ms / 1000 * 3 + 5)
        time.sleep(2)
        stop(client)
        stop(server)
        report = json.load(open(report_path)) if os.path.exists(report_path) else {}
        delivery = next((v for v in report.get("versions", []) if v["version"] == version), None)
        if delivery:
            row["received"] = delivery["received"]
            row["nacked"] = delivery["nacked"]
            row["publish_to_last_receipt_ms"] = delivery["publishToReceipt"]["max"]
            row["publish_to_receipt_p50_ms"] = delivery["publishToReceipt"]["p50"]
        row["publish_command_s"] = round(time.time() - published, 1)
        print(json.dumps(row), file=sys.stderr, flush=True)
        return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--meshctl", default=".build/release/meshctl")
    parser.add_argument("--proxies", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--bake-ms", type=int, default=2000)
    parser.add_argument("--waves", default="1,10%,100%")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    bench = Bench(args)
    rows = [bench.run("clean-immediate", None, 0.0), bench.run("clean-waves", args.waves, 0.0),
            bench.run("nack-immediate", None, 1.0), bench.run("nack-waves", args.waves, 1.0)]
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=2)
    print("| run | waves | bake | proxies that received the change | publish → last receipt (ms) | rollout start → end (ms) | outcome |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['waves']} | {r['bake_ms']} ms | {r.get('received', '—')} of {r['proxies']} | "
              f"{r.get('publish_to_last_receipt_ms', '—')} | {r.get('rollout_start_to_end_ms', '—')} | "
              f"{r.get('phase', 'served at once')}{' (' + r['failure'] + ')' if r.get('failure') else ''} |")
    for r in rows:
        if "nack_to_rollback_recorded_ms" in r:
            print(f"\n{r['name']}: canary NACK → rollback recorded in history {r['nack_to_rollback_recorded_ms']} ms; "
                  f"→ previous version loaded and served again {r.get('nack_to_previous_served_ms', '—')} ms")


if __name__ == "__main__":
    main()

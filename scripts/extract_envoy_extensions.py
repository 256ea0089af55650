#!/usr/bin/env python3
"""Reads the extension registry of the pinned Envoy binary (which extension factory
accepts which config message, per category) from its admin /server_info endpoint.

Usage: extract_envoy_extensions.py ENVOY OUT.json
Starts ENVOY with an admin listener on 127.0.0.1 (ephemeral port) and no other
configuration, reads node.extensions from /server_info, stops Envoy, and writes a
sorted JSON list of {category, name, type_urls}. Every wait has a deadline.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    envoy, out_path = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        bootstrap = os.path.join(tmp, "bootstrap.json")
        admin_path = os.path.join(tmp, "admin-address")
        with open(bootstrap, "w") as f:
            json.dump({"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}}, f)
        process = subprocess.Popen(
            [envoy, "-c", bootstrap, "--admin-address-path", admin_path, "--disable-hot-restart", "-l", "error",
             "--base-id", str(os.getpid() % 60000 + 1000)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 30
            while not (os.path.exists(admin_path) and os.path.getsize(admin_path) > 0):
                if process.poll() is not None:
                    raise SystemExit("envoy exited early: " + process.stderr.read().decode(errors="replace")[-2000:])
                if time.time() > deadline:
                    raise SystemExit("envoy did not open its admin listener within 30 s")
                time.sleep(0.05)
            with open(admin_path) as f:
                address = f.read().strip()
            with urllib.request.urlopen(f"http://{address}/server_info", timeout=10) as response:
                info = json.load(response)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    extensions = [
        {"category": e.get("category", ""), "name": e.get("name", ""), "type_urls": sorted(e.get("type_urls", []))}
        for e in info["node"]["extensions"]
    ]
    extensions.sort(key=lambda e: (e["category"], e["name"]))
    with open(out_path + ".tmp", "w") as f:
        json.dump(extensions, f, indent=1, sort_keys=True)
    os.replace(out_path + ".tmp", out_path)
    print(f"extract_envoy_extensions: {len(extensions)} extensions -> {out_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Reads the extension registry of the pinned Envoy binary (which extension factory
accepts which config message, per category) from its admin /server_info endpoint.

Usage: extract_envoy_extensions.py ENVOY OUT.json [DESCRIPTOR_SET.pb]
Starts ENVOY with an admin listener on 127.0.0.1 (ephemeral port) and no other
configuration, reads node.extensions from /server_info, stops Envoy, and writes a
sorted JSON list of {category, name, type_urls, config_types}. Every wait has a deadline.

type_urls are every message a factory registers (for an HTTP filter: its filter config
and its per-route config). config_types is the one a filter slot takes (the factory's
createEmptyConfigProto): for factories with several types it is found by asking Envoy
(`--mode validate` with each type, one field set, in the slot; Envoy answers "Unable to
unpack as <the config type>" for the others). The fields come from DESCRIPTOR_SET (the
API extracted from the same binary); without it every registered type is kept.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

CLUSTER = {"name": "app", "type": "STATIC", "load_assignment": {"cluster_name": "app", "endpoints": [
    {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}]}]}}
ROUTER = {"name": "router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
CODEC = {"name": "codec", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"}}


def one_field(messages, type_name):
    """A JSON object of `type_name` with one field set, so its serialized form is not empty
    (Envoy does not unpack an empty Any at all)."""
    message = messages.get(type_name)
    if message is None:
        return None
    for field in message.field:
        if field.label == field.LABEL_REPEATED:
            continue
        if field.type == field.TYPE_MESSAGE:
            return {field.name: {}}
        if field.type == field.TYPE_BOOL:
            return {field.name: True}
        if field.type == field.TYPE_STRING:
            return {field.name: "probe"}
        if field.type in (field.TYPE_UINT32, field.TYPE_UINT64, field.TYPE_INT32, field.TYPE_INT64):
            return {field.name: 1}
    return None


def load_messages(path):
    """Message full name → DescriptorProto, from a FileDescriptorSet."""
    from google.protobuf import descriptor_pb2
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        descriptor_set.ParseFromString(f.read())
    messages = {}

    def visit(prefix, message):
        full = f"{prefix}.{message.name}"
        messages[full] = message
        for nested in message.nested_type:
            visit(full, nested)

    for file in descriptor_set.file:
        for message in file.message_type:
            visit(file.package, message)
    return messages


def slot_bootstrap(category, type_name, fields):
    """A bootstrap with a `type_name` config (`fields` set) in the HTTP filter slot of `category`."""
    probe = {"name": "probe", "typed_config": {"@type": "type.googleapis.com/" + type_name, **fields}}
    if category == "envoy.filters.http":
        hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
               "stat_prefix": "probe", "http_filters": [probe, ROUTER],
               "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]}}
        return {"static_resources": {"clusters": [CLUSTER], "listeners": [{
            "name": "probe", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
            "filter_chains": [{"filters": [{"name": "hcm", "typed_config": hcm}]}]}]}}
    cluster = dict(CLUSTER)
    cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http_protocol_options": {}}, "http_filters": [probe, CODEC]}}
    return {"static_resources": {"clusters": [cluster]}}


def slot_config_types(envoy, category, type_urls, messages, tmp):
    """The types a filter slot of `category` accepts among a factory's `type_urls`."""
    accepted = set(type_urls)
    for type_name in type_urls:
        fields = one_field(messages, type_name)
        if fields is None:
            continue
        path = os.path.join(tmp, "probe.json")
        with open(path, "w") as f:
            json.dump(slot_bootstrap(category, type_name, fields), f)
        result = subprocess.run([envoy, "--mode", "validate", "-c", path, "-l", "critical", "--disable-hot-restart"],
                                capture_output=True, text=True, timeout=60)
        found = re.search(r"Unable to unpack as ([A-Za-z0-9_.]+)", result.stdout + result.stderr)
        if found and found.group(1) in type_urls and found.group(1) != type_name:
            accepted.discard(type_name)
    return sorted(accepted)


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    envoy, out_path = sys.argv[1], sys.argv[2]
    messages = load_messages(sys.argv[3]) if len(sys.argv) == 4 else {}
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
    probed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for e in extensions:
            e["config_types"] = e["type_urls"]
            if e["category"] in ("envoy.filters.http", "envoy.filters.http.upstream") and len(e["type_urls"]) > 1:
                e["config_types"] = slot_config_types(envoy, e["category"], e["type_urls"], messages, tmp)
                probed += 1
    extensions.sort(key=lambda e: (e["category"], e["name"]))
    with open(out_path + ".tmp", "w") as f:
        json.dump(extensions, f, indent=1, sort_keys=True)
    os.replace(out_path + ".tmp", out_path)
    print(f"extract_envoy_extensions: {len(extensions)} extensions ({probed} filter config types probed) -> {out_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

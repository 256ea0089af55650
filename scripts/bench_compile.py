#!/usr/bin/env python3
"""Benchmark `meshctl compile` and `meshctl validate` against the pipeline a team would
otherwise run: the same templates rendered with Python Jinja2, then checked with
`envoy --mode validate`.

For each size (default 1,000 and 10,000 services; each service has 2 dependencies,
3 endpoints and 3 routes, plus one ingress gateway) it generates a mesh, then measures
wall time and peak memory (max RSS) of:
  * meshctl compile   (into an empty store, then again with unchanged input)
  * meshctl validate
  * the baseline: Jinja2 rendering + YAML parsing + assembling one static bootstrap
    (Python), and envoy --mode validate on that bootstrap — one Envoy run for the whole
    mesh, the cheapest way to have Envoy check it.

Usage: bench_compile.py --meshctl .build/release/meshctl --envoy .venv-envoy/bin/envoy
       [--sizes 1000,10000] [--work DIR] [--keep]
Needs Jinja2 and PyYAML in the interpreter that runs it. Nothing here is a pass/fail test.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- mesh generation

def service_name(i):
    return "svc-%05d" % i


def generate(n, root):
    configs = os.path.join(root, "Configs")
    services = os.path.join(configs, "services")
    os.makedirs(services)
    shutil.copytree(os.path.join(ROOT, "templates"), os.path.join(root, "templates"))
    certs = os.path.join(root, "certs")
    with open(os.path.join(configs, "mesh.yaml"), "w") as f:
        f.write(f"""mesh: {{name: bench, trust_domain: mesh.local}}
xds_server: {{address: 127.0.0.1, port: 18000}}
certificates: {{directory: {certs}, ca: ca.crt, certificate: bench.crt, private_key: bench.key}}
defaults:
  connect_timeout: 1s
  timeout: 15s
  retries: {{attempts: 2, on: [connect-failure, refused-stream, reset], per_try_timeout: 5s}}
templates: {{upstream: upstream.yaml, sidecar: sidecar.yaml}}
sidecars: {{address: 127.0.0.1, outbound_address: 127.0.0.1, identity: "spiffe://{{trust_domain}}/proxy/{{service}}"}}
gateways:
  - name: ingress
    kind: ingress
    template: ingress.yaml
    identities: ["spiffe://mesh.local/proxy/ingress"]
    listen: {{address: 127.0.0.1, port: 10443}}
    tls: {{certificate: bench.crt, private_key: bench.key}}
    hosts: ["*"]
    routes:
      - {{name: api, match: {{prefix: /api/}}, service: {service_name(0)}}}
""")
    for i in range(n):
        name = service_name(i)
        deps = [service_name((i + 1) % n), service_name((i + 7) % n)]
        eps = ", ".join('"10.%d.%d.%d:8080"' % (1 + k, i // 250, i % 250 + 1) for k in range(3))
        with open(os.path.join(services, name + ".yaml"), "w") as f:
            f.write(f"""name: {name}
owners: [team-{i % 50}]
ports:
  - {{name: http, protocol: http, port: {20000 + i}}}
endpoints:
  static: [{eps}]
sidecar: {{outbound_port: {30000 + i}}}
dependencies: [{deps[0]}, {deps[1]}]
routes:
  - name: api
    match: {{prefix: /api/v1/}}
    timeout: 2s
    retries: {{attempts: 2, on: [5xx, reset], per_try_timeout: 500ms}}
  - name: health
    match: {{path: /healthz}}
    direct_response: {{status: 200, body: "ok"}}
  - name: legacy
    match:
      prefix: /old/
      headers: [{{name: x-legacy, present: true}}]
    redirect: {{prefix: /api/v1/, code: 308}}
""")
    return configs, os.path.join(root, "templates"), certs


# ---------------------------------------------------------------- measuring

def timed(argv, env=None):
    """Runs argv under /usr/bin/time; returns (seconds, peak MiB, exit code, output tail)."""
    start = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    lines = r.stderr.strip().splitlines()
    peak_kib = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    tail = "\n".join((r.stdout + "\n".join(lines[:-1])).strip().splitlines()[-5:])
    return wall, peak_kib / 1024, r.returncode, tail


# ---------------------------------------------------------------- baseline: Jinja2 + Envoy

def jinja_source(text):
    # Stencil and Jinja2 share this syntax except the empty branch of a for loop and forloop.
    return text.replace("{% empty %}", "{% else %}").replace("forloop.", "loop.")


def baseline_render(configs, templates, out_path):
    """What a Python pipeline does: parse the YAML, build the template context, render every
    template with Jinja2, parse the output and assemble one static Envoy bootstrap."""
    import jinja2
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["json"] = lambda v: json.dumps(v)

    def template(name):
        with open(os.path.join(templates, name)) as f:
            return env.from_string(jinja_source(f.read()))

    mesh = yaml.load(open(os.path.join(configs, "mesh.yaml")), Loader=loader)
    svc_dir = os.path.join(configs, "services")
    services = {}
    for file in sorted(os.listdir(svc_dir)):
        s = yaml.load(open(os.path.join(svc_dir, file)), Loader=loader)
        services[s["name"]] = s
    certs = mesh["certificates"]["directory"]
    td = mesh["mesh"]["trust_domain"]
    defaults = mesh["defaults"]

    def dur(ms):
        return "%ds" % (ms // 1000) if ms % 1000 == 0 else "%d.%03ds" % (ms // 1000, ms % 1000)

    def ms(text):
        for suffix, scale in (("ms", 1), ("s", 1000), ("m", 60000), ("h", 3600000)):
            if text.endswith(suffix):
                return int(float(text[:-len(suffix)]) * scale)

    def retries(r, default, timeout_ms):
        r = r or default
        if not r:
            return None
        per_try = r.get("per_try_timeout")
        if r is default and per_try and ms(per_try) >= timeout_ms:
            per_try = None
        return {"attempts": r["attempts"], "on": ",".join(r.get("on", [])), "per_try_timeout": dur(ms(per_try)) if per_try else None}

    def route_ctx(route, i, owner, svc):
        m = route.get("match", {})
        match = {"prefix": m.get("prefix", "/" if "path" not in m and "regex" not in m else None), "path": m.get("path"),
                 "regex": m.get("regex"), "case_sensitive": m.get("case_sensitive"), "headers": []}
        for h in m.get("headers", []):
            hc = {"name": h["name"], "invert": h.get("invert", False), "present": bool(h.get("present")),
                  "exact": h.get("exact"), "prefix": h.get("prefix"), "suffix": h.get("suffix"), "regex": h.get("regex")}
            match["headers"].append(hc)
        ctx = {"id": "%s/%s" % (owner, route.get("name", i)), "name": route.get("name"), "match": match, "cluster": None, "split": [],
               "timeout": None, "retries": None, "mirror": None, "rewrite_prefix": None, "redirect": None, "direct_response": None}
        if "redirect" in route:
            r = route["redirect"]
            codes = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER", 307: "TEMPORARY_REDIRECT", 308: "PERMANENT_REDIRECT"}
            ctx["redirect"] = {"scheme": r.get("scheme"), "host": r.get("host"), "path": r.get("path"), "prefix": r.get("prefix"), "code": codes[r.get("code", 301)]}
        elif "direct_response" in route:
            d = route["direct_response"]
            ctx["direct_response"] = {"status": d["status"], "body": d.get("body")}
        else:
            target = route.get("service", svc["name"] if svc else None)
            ctx["cluster"] = "%s.%s" % (target, services[target]["ports"][0]["name"])
            timeout = ms(route["timeout"]) if "timeout" in route else ms(svc.get("timeout", defaults["timeout"])) if svc else ms(defaults["timeout"])
            ctx["timeout"] = dur(timeout)
            ctx["retries"] = retries(route.get("retries") or (svc or {}).get("retries"), defaults.get("retries"), timeout)
        return ctx

    def service_routes(s):
        routes = list(s.get("routes", []))
        if not any(r.get("match", {}).get("prefix") == "/" and not r.get("match", {}).get("headers") for r in routes):
            routes.append({"name": "default"})
        return [route_ctx(r, i, s["name"], s) for i, r in enumerate(routes)]

    def endpoints(s):
        return [{"address": e.rsplit(":", 1)[0], "port": int(e.rsplit(":", 1)[1])} for e in s["endpoints"]["static"]]

    mesh_ctx = {"name": mesh["mesh"]["name"], "trust_domain": td, "xds_address": "127.0.0.1", "xds_port": 18000,
                "certificate_directory": certs, "ca": certs + "/ca.crt", "identity_secret": "mesh-identity", "ca_secret": "mesh-ca",
                "connect_timeout": "1s", "timeout": "15s", "mtls": True, "identity_prefix": "spiffe://%s/" % td}
    upstream_ctx, service_ctx = {}, {}
    for name, s in services.items():
        routes = service_routes(s)
        upstream_ctx[name] = {"name": name, "vhost": name, "domains": [name], "routes": routes, "grpc": False}
        ports = []
        for p in s["ports"]:
            eps = endpoints(s)
            hosts = []
            for e in eps:
                if e["address"] not in hosts:
                    hosts.append(e["address"])
            ports.append({"name": p["name"], "protocol": p["protocol"], "port": p["port"], "http": p["protocol"] == "http",
                          "grpc": p["protocol"] == "grpc", "tcp": p["protocol"] == "tcp", "cluster": "%s.%s" % (name, p["name"]),
                          "local_cluster": "%s.%s.local" % (name, p["name"]), "listener": "%s.%s.inbound" % (name, p["name"]),
                          "route_config": "%s.%s.inbound" % (name, p["name"]), "dns": False, "endpoints": eps,
                          "mesh_endpoints": [{"address": h, "port": p["port"]} for h in hosts]})
        outbound = {"listener": name + ".outbound", "route_config": name + ".outbound", "address": "127.0.0.1",
                    "port": s["sidecar"]["outbound_port"]} if "sidecar" in s else None
        service_ctx[name] = {"name": name, "description": s.get("description"), "owners": s["owners"], "identity": "spiffe://%s/proxy/%s" % (td, name),
                             "mtls": True, "allowed_callers": [], "certificate": certs + "/bench.crt", "private_key": certs + "/bench.key",
                             "inbound_address": "127.0.0.1", "connect_timeout": "1s", "timeout": "15s", "ports": ports, "outbound": outbound,
                             "routes": routes, "tcp_dependencies": [], "domains": [name]}
    upstream_t, sidecar_t, ingress_t = template("upstream.yaml"), template("sidecar.yaml"), template("ingress.yaml")
    resources = {"listeners": {}, "clusters": {}, "route_configurations": {}, "cluster_load_assignments": {}, "secrets": {}}

    def collect(text):
        doc = yaml.load(text, Loader=loader) or {}
        for kind, items in doc.items():
            for item in items or []:
                resources[kind][item.get("name") or item.get("cluster_name")] = item

    for name, s in services.items():
        collect(upstream_t.render(mesh=mesh_ctx, service=service_ctx[name]))
        ups = [upstream_ctx[d] for d in s.get("dependencies", [])]
        collect(sidecar_t.render(mesh=mesh_ctx, service=service_ctx[name], upstreams=ups))
    for g in mesh.get("gateways", []):
        group = {"name": g["name"], "kind": g["kind"], "listener": g["name"], "route_config": g["name"], "address": g["listen"]["address"],
                 "port": g["listen"]["port"], "hosts": g["hosts"], "certificate": certs + "/bench.crt", "private_key": certs + "/bench.key",
                 "identity": g["identities"][0], "identity_certificate": certs + "/bench.crt", "identity_private_key": certs + "/bench.key",
                 "routes": [route_ctx(r, i, g["name"], None) for i, r in enumerate(g["routes"])], "cors": None}
        collect(ingress_t.render(mesh=mesh_ctx, group=group, upstreams=[]))

    # One static bootstrap: EDS clusters get their assignments inline, RDS becomes inline
    # route_config, SDS secrets become static secrets.
    def strip_sds(o):
        if isinstance(o, dict):
            if "sds_config" in o and "name" in o and len(o) == 2:
                del o["sds_config"]
            for v in o.values():
                strip_sds(v)
        elif isinstance(o, list):
            for v in o:
                strip_sds(v)
    clusters = []
    for name, c in resources["clusters"].items():
        if c.get("type") == "EDS":
            c["type"] = "STATIC"
            del c["eds_cluster_config"]
            c["load_assignment"] = resources["cluster_load_assignments"][name]
        clusters.append(c)
    listeners = []
    for l in resources["listeners"].values():
        for chain in l.get("filter_chains", []):
            for f in chain.get("filters", []):
                tc = f.get("typed_config", {})
                if "rds" in tc:
                    tc["route_config"] = resources["route_configurations"][tc["rds"]["route_config_name"]]
                    del tc["rds"]
        listeners.append(l)
    boot = {"node": {"id": "bench", "cluster": "bench"},
            "static_resources": {"listeners": listeners, "clusters": clusters, "secrets": list(resources["secrets"].values())}}
    strip_sds(boot)
    with open(out_path, "w") as f:
        json.dump(boot, f)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--meshctl", default=os.path.join(ROOT, ".build/release/meshctl"))
    ap.add_argument("--envoy", default=os.path.join(ROOT, ".venv-envoy/bin/envoy"))
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--work", help="directory for the generated meshes (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the generated meshes")
    ap.add_argument("--no-baseline", action="store_true", help="skip the Jinja2 + Envoy pipeline")
    ap.add_argument("--baseline-render", nargs=3, metavar=("CONFIGS", "TEMPLATES", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_render:
        baseline_render(*args.baseline_render)
        return 0
    for tool in (args.meshctl, args.envoy):
        if not os.access(tool, os.X_OK):
            sys.exit("bench_compile: %s is not an executable (build with `swift build -c release`; see --help)" % tool)
    work = args.work or tempfile.mkdtemp(prefix="meshctl-bench-compile-")
    os.makedirs(work, exist_ok=True)
    results = []
    try:
        for n in [int(s) for s in args.sizes.split(",")]:
            root = os.path.join(work, "mesh-%d" % n)
            shutil.rmtree(root, ignore_errors=True)
            configs, templates, certs = generate(n, root)
            subprocess.run([args.meshctl, "certs", "init", "--out", certs, "--proxy", "bench"], check=True, capture_output=True)
            store = os.path.join(root, "store")
            row = {"services": n}
            row["compile"] = timed([args.meshctl, "compile", "--configs", configs, "--templates", templates, "--out", store])
            row["compile_unchanged"] = timed([args.meshctl, "compile", "--configs", configs, "--templates", templates, "--out", store])
            row["validate"] = timed([args.meshctl, "validate", "--configs", configs, "--templates", templates])
            for key in ("compile", "compile_unchanged", "validate"):
                if row[key][2] != 0:
                    print("meshctl %s failed (exit %d):\n%s" % (key, row[key][2], row[key][3]), file=sys.stderr)
            if not args.no_baseline:
                boot = os.path.join(root, "bootstrap.json")
                row["render"] = timed([sys.executable, os.path.abspath(__file__), "--baseline-render", configs, templates, boot])
                row["envoy"] = timed([args.envoy, "--mode", "validate", "-c", boot, "-l", "critical", "--disable-hot-restart"])
                for key in ("render", "envoy"):
                    if row[key][2] != 0:
                        print("baseline %s failed (exit %d):\n%s" % (key, row[key][2], row[key][3]), file=sys.stderr)
            results.append(row)
            report(results)
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(results):
    print()
    print("| services | meshctl compile | compile, unchanged | meshctl validate | Jinja2 render | envoy --mode validate | Jinja2 + Envoy | speed-up (validate) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        def cell(key):
            if key not in r:
                return "–"
            t, m, code, _ = r[key]
            return "%.2f s, %d MiB%s" % (t, m, "" if code == 0 else " (exit %d)" % code)
        base = ""
        speed = "–"
        if "render" in r and "envoy" in r:
            total = r["render"][0] + r["envoy"][0]
            base = "%.2f s" % total
            speed = "%.0f×" % (total / r["validate"][0])
        print("| %d | %s | %s | %s | %s | %s | %s | %s |" % (r["services"], cell("compile"), cell("compile_unchanged"), cell("validate"),
                                                       cell("render"), cell("envoy"), base or "–", speed))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())

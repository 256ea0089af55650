#!/usr/bin/env python3
"""Real-world configurations and their mutants, with Envoy 1.40's verdict on each.

  mutants.py record --envoy ENVOY [--per-config N] [--jobs N]   regenerate mutants.jsonl (runs the real Envoy)
  mutants.py materialize --certs DIR --out DIR                   write every case as a JSON bootstrap

`configs/*.yaml` are configurations in the shapes teams write (front proxy, SNI passthrough, gRPC,
UDP, TCP/databases, rate limits, ext_authz, tracing, custom cluster types, many filter chains, a
hand-written mTLS sidecar, edge hardening). Each is mutated --per-config times, one change per
mutant, drawn with a fixed seed from these kinds: a key misspelt, an enum value misspelt or
swapped for another, a key deleted, a list element duplicated, a number negated or zeroed, a
string changed, a reference (cluster, secret) broken, a list or object emptied, an "@type"
replaced by another extension's type (wrong slot). Every mutation is stored as a concrete edit
(`op`), so `materialize` rebuilds the same files without randomness or the extension registry.

`record` runs `envoy --mode validate` on each case (the original and its mutants), writing its
verdict and the last line Envoy printed into mutants.jsonl. `materialize` writes `ID.json` for
every line (certificates named `__CERTS__/…` point at --certs) and `index.tsv` (ID, verdict);
RealWorldCorpusTests compares meshctl's verdict with Envoy's on all of them.
"""
import argparse
import concurrent.futures
import copy
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
KINDS = ["key-typo", "enum-typo", "enum-swap", "delete", "duplicate", "negate", "zero", "string", "reference", "empty", "wrong-type"]
REFERENCE_KEYS = {"cluster", "cluster_name", "collector_cluster", "name"}


def walk(node, prefix=()):
    yield prefix, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, prefix + (index,))


def at(node, path):
    for key in path:
        node = node[key]
    return node


def typo(word, rng):
    """One realistic misspelling: two neighbours swapped, a letter dropped, or a letter doubled."""
    if len(word) < 3:
        return word + word[-1]
    i = rng.randrange(len(word) - 1)
    choice = rng.randrange(3)
    if choice == 0 and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if choice == 1:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def propose(doc, kind, types, rng):
    """A concrete edit of `kind` on `doc` (not applied), or None when the document has nothing to edit."""
    nodes = list(walk(doc))
    def pick(candidates):
        return rng.choice(candidates) if candidates else None
    if kind == "key-typo":
        found = pick([(p, k) for p, n in nodes if isinstance(n, dict) for k in n if k != "@type"])
        if not found:
            return None
        path, key = found
        new = typo(key, rng)
        return None if new == key or new in at(doc, path) else {"op": "rename", "path": list(path), "from": key, "to": new}
    if kind in ("enum-typo", "enum-swap"):
        enums = [(p, n) for p, n in nodes if p and isinstance(n, str) and n.isupper() and (n.replace("_", "").isalnum()) and len(n) > 2]
        found = pick(enums)
        if not found:
            return None
        path, value = found
        if kind == "enum-typo":
            return {"op": "set", "path": list(path), "value": typo(value, rng)}
        others = sorted({n for _, n in enums if n != value} | {"STATIC", "STRICT_DNS", "EDS", "ROUND_ROBIN", "RING_HASH", "UDP", "TCP", "V6_ONLY", "HTTP2"})
        return {"op": "set", "path": list(path), "value": rng.choice(others)}
    if kind == "delete":
        found = pick([(p, k) for p, n in nodes if isinstance(n, dict) for k in n if k != "@type"])
        return found and {"op": "delete", "path": list(found[0]) + [found[1]]}
    if kind == "duplicate":
        found = pick([(p, n) for p, n in nodes if isinstance(n, list) and n and isinstance(n[0], dict)])
        return found and {"op": "append", "path": list(found[0]), "value": copy.deepcopy(rng.choice(found[1]))}
    if kind in ("negate", "zero"):
        found = pick([(p, n) for p, n in nodes if p and isinstance(n, int) and not isinstance(n, bool)])
        return found and {"op": "set", "path": list(found[0]), "value": -found[1] if kind == "negate" else 0}
    if kind == "string":
        found = pick([(p, n) for p, n in nodes if p and isinstance(n, str) and p[-1] != "@type"])
        return found and {"op": "set", "path": list(found[0]), "value": rng.choice(["", found[1] + "x", "*", "localhost", found[1].upper(), "1s"])}
    if kind == "reference":
        found = pick([(p, n) for p, n in nodes if p and isinstance(n, str) and p[-1] in REFERENCE_KEYS and "." not in n])
        return found and {"op": "set", "path": list(found[0]), "value": found[1] + "-missing"}
    if kind == "empty":
        found = pick([(p, n) for p, n in nodes if p and isinstance(n, (dict, list)) and n])
        return found and {"op": "set", "path": list(found[0]), "value": {} if isinstance(found[1], dict) else []}
    if kind == "wrong-type":
        found = pick([p for p, n in nodes if p and p[-1] == "@type" and isinstance(n, str)])
        return found and {"op": "set", "path": list(found[:-1]), "value": {"@type": "type.googleapis.com/" + rng.choice(types)}}
    raise ValueError(kind)


def apply(doc, edit):
    """Applies a recorded edit to `doc` in place."""
    if edit is None:
        return doc
    path = edit["path"]
    if edit["op"] == "rename":
        holder = at(doc, path)
        # Keep the key's position: Envoy and meshctl both report the first problem they meet.
        items = [(edit["to"] if k == edit["from"] else k, v) for k, v in holder.items()]
        holder.clear()
        holder.update(items)
    elif edit["op"] == "set":
        if not path:
            return edit["value"]
        at(doc, path[:-1])[path[-1]] = copy.deepcopy(edit["value"])
    elif edit["op"] == "delete":
        del at(doc, path[:-1])[path[-1]]
    elif edit["op"] == "append":
        at(doc, path).append(copy.deepcopy(edit["value"]))
    else:
        raise ValueError(edit["op"])
    return doc


def configs():
    return sorted(glob.glob(os.path.join(HERE, "configs", "*.yaml")))


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def render(doc, certs):
    return json.dumps(doc, indent=1).replace("__CERTS__", certs)


def envoy_verdict(envoy, path):
    run = subprocess.run([envoy, "--mode", "validate", "-c", path, "-l", "critical", "--disable-hot-restart"],
                         capture_output=True, text=True, timeout=120, cwd=os.path.dirname(path))
    lines = [line for line in (run.stdout + run.stderr).strip().splitlines() if line.strip()]
    return ("accept" if run.returncode == 0 else "reject"), (lines[-1] if lines else "")[-400:]


def record(args):
    registry = os.path.join(ROOT, "Sources/CEnvoyProto/generated/envoy_extensions.json")
    with open(registry) as f:
        types = sorted({t for entry in json.load(f) for t in entry["type_urls"]})
    cases = []
    for source in configs():
        name = os.path.splitext(os.path.basename(source))[0]
        original = load(source)
        cases.append({"id": name, "source": os.path.basename(source), "kind": "original", "op": None})
        rng = random.Random(f"{name}/{args.seed}")
        seen = set()
        made = attempts = 0
        while made < args.per_config and attempts < 20 * args.per_config:
            attempts += 1
            kind = KINDS[(attempts - 1) % len(KINDS)]
            edit = propose(original, kind, types, rng)
            key = json.dumps(edit, sort_keys=True)
            if not edit or key in seen:
                continue
            seen.add(key)
            made += 1
            cases.append({"id": f"{name}--{made:03d}", "source": os.path.basename(source), "kind": kind, "op": edit})
    with tempfile.TemporaryDirectory() as tmp:
        certs = os.path.join(tmp, "certs")
        subprocess.run([os.path.join(HERE, "..", "envoy", "make-certs.sh"), certs], check=True)
        paths = []
        for case in cases:
            doc = apply(copy.deepcopy(load(os.path.join(HERE, "configs", case["source"]))), case["op"])
            path = os.path.join(tmp, case["id"] + ".json")
            with open(path, "w") as f:
                f.write(render(doc, certs))
            paths.append(path)
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            verdicts = list(pool.map(lambda p: envoy_verdict(args.envoy, p), paths))
    originals_rejected = [c["id"] for c, (v, _) in zip(cases, verdicts) if c["kind"] == "original" and v != "accept"]
    if originals_rejected:
        raise SystemExit(f"Envoy rejects these originals; fix them first: {originals_rejected}")
    with open(os.path.join(HERE, "mutants.jsonl"), "w") as f:
        for case, (verdict, said) in zip(cases, verdicts):
            f.write(json.dumps({**case, "envoy": verdict, "envoy_says": said.replace(tmp, "TMP")}, sort_keys=True) + "\n")
    accepted = sum(1 for v, _ in verdicts if v == "accept")
    print(f"recorded {len(cases)} cases ({len(configs())} originals): Envoy accepts {accepted}, rejects {len(cases) - accepted}")


def materialize(args):
    os.makedirs(args.out, exist_ok=True)
    index = []
    with open(os.path.join(HERE, "mutants.jsonl")) as f:
        for line in f:
            case = json.loads(line)
            doc = apply(load(os.path.join(HERE, "configs", case["source"])), case["op"])
            with open(os.path.join(args.out, case["id"] + ".json"), "w") as out:
                out.write(render(doc, args.certs))
            index.append(f"{case['id']}\t{case['envoy']}\t{case['kind']}")
    with open(os.path.join(args.out, "index.tsv"), "w") as out:
        out.write("\n".join(index) + "\n")
    print(len(index))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--envoy", required=True)
    rec.add_argument("--per-config", type=int, default=44)
    rec.add_argument("--seed", default="1")
    rec.add_argument("--jobs", type=int, default=2)
    mat = sub.add_parser("materialize")
    mat.add_argument("--certs", required=True)
    mat.add_argument("--out", required=True)
    args = parser.parse_args()
    record(args) if args.command == "record" else materialize(args)


if __name__ == "__main__":
    main()

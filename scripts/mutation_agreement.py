#!/usr/bin/env python3
"""Mutates real bootstraps and asks both meshctl and the pinned Envoy about each mutant.

  mutation_agreement.py --meshctl .build/debug/meshctl --envoy .venv-envoy/bin/envoy [--seed N] [--count N]
                        [--kinds dup,del,neg,zero,str,enum,empty,type]

Sources: the Envoy examples beside the checkout (../shared/corpus/envoy-examples/cases) and
Tests/Corpus/envoy/valid. Each mutant is one random change — a list element duplicated, a key
deleted, a number negated or zeroed, a string changed, an enum swapped, a list or object
emptied, or an "@type" replaced by another config type the pinned Envoy registers (payload
dropped). Mutants live in a temporary directory (never in the project); both tools run with the
source file's directory as working directory. Prints one JSON line per disagreement and a
summary; the exit status is 0 either way (this is a survey, not a gate: meshctl deliberately
refuses a few things Envoy accepts, see docs/ARCHITECTURE.md).
"""
import argparse
import copy
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def paths(node, prefix=()):
    yield prefix, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, prefix + (index,))


def get(node, path):
    for key in path:
        node = node[key]
    return node


def mutate(doc, kind, types, rng):
    """Applies one change of `kind` to `doc` in place; returns its description or None."""
    nodes = list(paths(doc))
    if kind == "dup":
        lists = [(p, n) for p, n in nodes if isinstance(n, list) and n and isinstance(n[0], dict)]
        if not lists:
            return None
        p, n = rng.choice(lists)
        n.append(copy.deepcopy(rng.choice(n)))
        return f"duplicate an element of {p}"
    if kind == "del":
        objects = [(p, n) for p, n in nodes if isinstance(n, dict) and n]
        p, n = rng.choice(objects)
        key = rng.choice(list(n))
        if key == "@type":
            return None
        del n[key]
        return f"delete {p + (key,)}"
    if kind in ("neg", "zero"):
        numbers = [(p, n) for p, n in nodes if isinstance(n, int) and not isinstance(n, bool) and p]
        if not numbers:
            return None
        p, n = rng.choice(numbers)
        get(doc, p[:-1])[p[-1]] = -n if kind == "neg" else 0
        return f"{kind} {p}"
    if kind == "str":
        strings = [(p, n) for p, n in nodes if isinstance(n, str) and p and p[-1] != "@type"]
        p, n = rng.choice(strings)
        get(doc, p[:-1])[p[-1]] = rng.choice(["", n + "x", "*", "localhost", n.upper()])
        return f"change string {p}"
    if kind == "enum":
        enums = [(p, n) for p, n in nodes if isinstance(n, str) and n.isupper() and "_" in n]
        if not enums:
            return None
        p, n = rng.choice(enums)
        get(doc, p[:-1])[p[-1]] = rng.choice(["STATIC", "STRICT_DNS", "LOGICAL_DNS", "EDS", "ORIGINAL_DST", "ROUND_ROBIN", "RING_HASH", "UDP"])
        return f"swap enum {p}"
    if kind == "empty":
        containers = [(p, n) for p, n in nodes if isinstance(n, (dict, list)) and n and p]
        p, n = rng.choice(containers)
        get(doc, p[:-1])[p[-1]] = {} if isinstance(n, dict) else []
        return f"empty {p}"
    if kind == "type":
        anys = [(p, n) for p, n in nodes if p and p[-1] == "@type" and isinstance(n, str)]
        if not anys:
            return None
        p, _ = rng.choice(anys)
        new_type = rng.choice(types)
        holder = get(doc, p[:-1])
        for key in list(holder):
            if key != "@type":
                del holder[key]
        holder["@type"] = "type.googleapis.com/" + new_type
        return f"type {p} -> {new_type}"
    raise ValueError(kind)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshctl", required=True)
    parser.add_argument("--envoy", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--kinds", default="dup,del,neg,zero,str,enum,empty,type")
    args = parser.parse_args()
    args.meshctl, args.envoy = os.path.abspath(args.meshctl), os.path.abspath(args.envoy)  # the tools run elsewhere
    rng = random.Random(args.seed)
    kinds = args.kinds.split(",")
    examples = os.path.join(os.path.dirname(ROOT), "shared", "corpus", "envoy-examples", "cases")
    sources = sorted(glob.glob(os.path.join(examples, "*.y*ml"))) + sorted(glob.glob(os.path.join(ROOT, "Tests/Corpus/envoy/valid/*.yaml")))
    registry = os.path.join(ROOT, "Sources/CEnvoyProto/generated/envoy_extensions.json")
    with open(registry) as f:
        types = sorted({t for entry in json.load(f) for t in entry["type_urls"]})
    agreed = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        while total < args.count:
            source = rng.choice(sources)
            with open(source) as f:
                doc = yaml.safe_load(f)
            what = mutate(doc, rng.choice(kinds), types, rng)
            if what is None:
                continue
            path = os.path.join(tmp, f"mutant-{total}.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(doc, f)
            total += 1
            cwd = os.path.dirname(source)
            envoy = subprocess.run([args.envoy, "--mode", "validate", "-c", path, "-l", "critical", "--disable-hot-restart"],
                                   capture_output=True, text=True, cwd=cwd, timeout=120)
            meshctl = subprocess.run([args.meshctl, "validate", "--envoy", path], capture_output=True, text=True, cwd=cwd, timeout=120)
            if (envoy.returncode == 0) == (meshctl.returncode == 0):
                agreed += 1
                continue
            lines = (envoy.stdout + envoy.stderr).strip().splitlines()
            print(json.dumps({"source": os.path.basename(source), "mutation": what,
                              "envoy": "accepts" if envoy.returncode == 0 else "rejects",
                              "meshctl": "accepts" if meshctl.returncode == 0 else "rejects",
                              "envoy_says": (lines[-1] if lines else "")[-300:], "meshctl_says": meshctl.stdout[-300:]}), flush=True)
    print(f"mutation_agreement: {agreed}/{total} mutants agree (seed {args.seed}, kinds {args.kinds})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


sys.path.insert(0, os.path.join(ROOT, "Tests", "Corpus", "realworld"))
from mutants import KINDS, apply, propose  # noqa: E402  (the same edits the real-world corpus gate is built from)

# This survey's short kind names, and the corpus's names they stand for.
SHORT_KINDS = {"dup": "duplicate", "del": "delete", "neg": "negate", "zero": "zero", "str": "string",
               "enum": "enum-swap", "empty": "empty", "type": "wrong-type"}


def mutate(doc, kind, types, rng):
    """Applies one edit of `kind` to `doc`; returns (the edited document, its description) or None."""
    edit = propose(doc, SHORT_KINDS.get(kind, kind), types, rng)
    if not edit:
        return None
    return apply(doc, edit), f"{edit['op']} {edit['path']}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshctl", required=True)
    parser.add_argument("--envoy", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--kinds", default="dup,del,neg,zero,str,enum,empty,type",
                        help=f"short names ({', '.join(SHORT_KINDS)}) or the corpus's ({', '.join(KINDS)})")
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
            mutated = mutate(doc, rng.choice(kinds), types, rng)
            if mutated is None:
                continue
            doc, what = mutated
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

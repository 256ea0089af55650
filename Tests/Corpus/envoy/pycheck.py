#!/usr/bin/env python3
"""Python protobuf oracle for the Envoy corpus.

For every file given on the command line: load it (json.loads for *.json,
yaml.safe_load otherwise) and run
google.protobuf.json_format.ParseDict(d, Bootstrap()).
Prints one line per file: "PY-OK <file>" or "PY-ERR <file>: <message>".
Exit status 0 always (the caller decides what an ERR means).

Requires xds-protos (envoy.* *_pb2 modules) and PyYAML. All *_pb2 modules
found next to the envoy package are imported so that Any @type URLs resolve.
"""
import importlib
import json
import os
import sys

import yaml
from google.protobuf import json_format

import envoy  # noqa: F401  (xds-protos namespace package)


def import_all_pb2():
    roots = set()
    for name in ("envoy", "xds", "udpa", "validate", "google"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for p in getattr(mod, "__path__", []):
            roots.add(os.path.dirname(p))
    seen = set()
    for root in sorted(roots):
        for top in ("envoy", "xds", "udpa", "validate", "google", "opentelemetry",
                    "opencensus", "cel"):
            base = os.path.join(root, top)
            if not os.path.isdir(base):
                continue
            for dirpath, _dirs, files in os.walk(base):
                for fn in files:
                    if not fn.endswith("_pb2.py"):
                        continue
                    rel = os.path.relpath(os.path.join(dirpath, fn), root)
                    modname = rel[:-3].replace(os.sep, ".")
                    if modname in seen:
                        continue
                    seen.add(modname)
                    try:
                        importlib.import_module(modname)
                    except Exception:  # some optional deps may be absent
                        pass


def main(argv):
    import_all_pb2()
    from envoy.config.bootstrap.v3 import bootstrap_pb2

    for path in argv[1:]:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
            json_format.ParseDict(data, bootstrap_pb2.Bootstrap())
            print(f"PY-OK {path}")
        except Exception as exc:  # noqa: BLE001
            msg = " ".join(str(exc).split())[:300]
            print(f"PY-ERR {path}: {type(exc).__name__}: {msg}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

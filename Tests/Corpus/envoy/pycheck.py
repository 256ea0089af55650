#!/usr/bin/env python3
"""Python protobuf oracle for the Envoy corpus.

For every file given on the command line: load it (json.loads for *.json,
yaml.safe_load otherwise) and run
google.protobuf.json_format.ParseDict(d, Bootstrap()).
Prints one line per file: "PY-OK <file>" or "PY-ERR <file>: <message>".
Exit status 0 always (the caller decides what an ERR means).

The message types come from the FileDescriptorSet meshctl embeds (extracted from the
pinned Envoy binary by scripts/generate.py): MESHCTL_DESCRIPTOR_SET, or
Sources/CEnvoyProto/generated/envoy_api.pb of this checkout. Requires protobuf and PyYAML.
"""
import json
import os
import sys

import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def load_pool():
    path = os.environ.get("MESHCTL_DESCRIPTOR_SET") or os.path.join(ROOT, "Sources/CEnvoyProto/generated/envoy_api.pb")
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as fh:
        descriptor_set.ParseFromString(fh.read())
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_set.file:  # dependency order
        pool.AddSerializedFile(file.SerializeToString())
    return pool


def main(argv):
    pool = load_pool()
    bootstrap = message_factory.GetMessageClass(pool.FindMessageTypeByName("envoy.config.bootstrap.v3.Bootstrap"))

    for path in argv[1:]:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
            json_format.ParseDict(data, bootstrap(), descriptor_pool=pool)
            print(f"PY-OK {path}")
        except Exception as exc:  # noqa: BLE001
            msg = " ".join(str(exc).split())[:300]
            print(f"PY-ERR {path}: {type(exc).__name__}: {msg}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

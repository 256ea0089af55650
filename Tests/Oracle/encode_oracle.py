#!/usr/bin/env python3
"""Reference encoder for meshctl's oracle test: Python protobuf + the pinned xds-protos.

Usage: encode_oracle.py TYPE FILE...   (FILE is YAML or JSON by its suffix)
For each file prints one line: "<file>\tok\t<hex of deterministic serialization>"
or "<file>\terror\t<message>". Every Any is re-packed deterministically at every
depth, so the bytes are protobuf's deterministic serialization all the way down
(json_format packs Any payloads with a plain, non-deterministic SerializeToString).
"""
import importlib
import json
import os
import sys

import yaml
from google.protobuf import any_pb2, json_format, symbol_database


def import_everything():
    """Registers every message type of the API, so any @type resolves."""
    for name in ["any", "duration", "empty", "field_mask", "struct", "timestamp", "wrappers"]:
        importlib.import_module(f"google.protobuf.{name}_pb2")
    for root in ["envoy", "xds", "udpa", "validate"]:
        package = importlib.import_module(root)
        for path in package.__path__:
            for dirpath, _, filenames in os.walk(path):
                for filename in filenames:
                    if filename.endswith("_pb2.py"):
                        rel = os.path.relpath(os.path.join(dirpath, filename), path)
                        try:
                            importlib.import_module(root + "." + rel[:-3].replace(os.sep, "."))
                        except Exception:
                            pass


def repack(message):
    """Re-serializes every Any below `message` deterministically, innermost first."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.message_type is not None:
                for item in value.values():
                    repack(item)
            continue
        items = value if getattr(field, "is_repeated", None) or (hasattr(field, "label") and field.label == field.LABEL_REPEATED) else [value]
        for item in items:
            repack(item)
    if message.DESCRIPTOR.full_name == "google.protobuf.Any" and message.type_url:
        inner_type = message.type_url.split("/")[-1]
        cls = symbol_database.Default().GetSymbol(inner_type)
        inner = cls()
        inner.ParseFromString(message.value)
        repack(inner)
        message.value = inner.SerializeToString(deterministic=True)


def main():
    import_everything()
    cls = symbol_database.Default().GetSymbol(sys.argv[1])
    for path in sys.argv[2:]:
        try:
            with open(path) as f:
                data = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
            message = json_format.ParseDict(data, cls())
            repack(message)
            print(f"{path}\tok\t{message.SerializeToString(deterministic=True).hex()}")
        except Exception as error:  # the oracle's verdict, reported, not raised
            print(f"{path}\terror\t{str(error).splitlines()[0] if str(error) else type(error).__name__}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference encoder for meshctl's oracle test: Python protobuf over the same Envoy API.

Usage: encode_oracle.py TYPE FILE...   (FILE is YAML or JSON by its suffix)
The descriptor pool is built from the FileDescriptorSet meshctl embeds, the one
extracted from the pinned Envoy binary at build time (MESHCTL_DESCRIPTOR_SET, or
Sources/CEnvoyProto/generated/envoy_api.pb beside this script's checkout), so types
only Envoy 1.40 has resolve. Python protobuf's parser and serializer stay the reference.
For each file prints one line: "<file>\tok\t<hex of deterministic serialization>"
or "<file>\terror\t<message>". Every Any is re-packed deterministically at every
depth, so the bytes are protobuf's deterministic serialization all the way down
(json_format packs Any payloads with a plain, non-deterministic SerializeToString).
"""
import json
import os
import sys

import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_pool():
    """Every file of the extracted Envoy API, in a pool of its own."""
    path = os.environ.get("MESHCTL_DESCRIPTOR_SET") or os.path.join(ROOT, "Sources/CEnvoyProto/generated/envoy_api.pb")
    descriptor_set = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        descriptor_set.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_set.file:  # dependency order
        pool.AddSerializedFile(file.SerializeToString())
    return pool


POOL = load_pool()


def message_class(full_name):
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full_name))


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
        inner = message_class(inner_type)()
        inner.ParseFromString(message.value)
        repack(inner)
        message.value = inner.SerializeToString(deterministic=True)


def main():
    cls = message_class(sys.argv[1])
    for path in sys.argv[2:]:
        try:
            with open(path) as f:
                data = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
            message = json_format.ParseDict(data, cls(), descriptor_pool=POOL)
            repack(message)
            print(f"{path}\tok\t{message.SerializeToString(deterministic=True).hex()}")
        except Exception as error:  # the oracle's verdict, reported, not raised
            print(f"{path}\terror\t{str(error).splitlines()[0] if str(error) else type(error).__name__}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Extracts the Envoy API from the pinned Envoy binary itself.

protoc's C++ generator embeds every compiled .proto file in the binary as its
serialized FileDescriptorProto (the `descriptor_table_protodef_*` arrays), so the
binary carries the exact API it was built with, custom options (validate.rules,
udpa/envoy annotations) included. This script finds them:

  * candidates are `0x0a <varint len> <len bytes of a name ending in .proto>` — field 1
    (`name`) of a FileDescriptorProto is always serialized first;
  * from each candidate it walks protobuf wire format while the top-level tags are
    FileDescriptorProto fields with their wire types, remembering each field boundary;
  * the longest prefix that `descriptor_pb2.FileDescriptorProto` parses completely,
    and whose parsed name equals the candidate's, is the file (shorter prefixes are
    only tried when a longer one fails);
  * files are deduplicated by name (see `extract`), and the closure is checked: every
    dependency of every file must have been found.

Usage (as a library): extract(path) -> {name: serialized bytes}
Usage (as a tool):    extract_envoy_descriptors.py ENVOY OUT.pb   writes a FileDescriptorSet
                      in dependency order and prints a one-line summary.
"""
import os
import re
import sys

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

# FileDescriptorProto's fields and the wire types they may arrive with
# (0 varint, 2 length-delimited; repeated int32 fields may be packed).
FILE_FIELDS = {
    1: {2}, 2: {2}, 3: {2}, 4: {2}, 5: {2}, 6: {2}, 7: {2}, 8: {2}, 9: {2},
    10: {0, 2}, 11: {0, 2}, 12: {2}, 14: {0}, 15: {2},
}

CANDIDATE = re.compile(rb"\x0a([\x01-\x7f]|[\x80-\xff][\x01-\x7f])([A-Za-z0-9_./\-]{1,300}?\.proto)")


def read_varint(data, pos, end):
    value, shift = 0, 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    return None, pos


def field_boundaries(data, start, limit):
    """Offsets where a top-level FileDescriptorProto field ends, walking from `start`."""
    boundaries = []
    pos = start
    end = min(len(data), limit)
    while pos < end:
        tag, after_tag = read_varint(data, pos, end)
        if tag is None:
            break
        number, wire = tag >> 3, tag & 7
        if wire not in FILE_FIELDS.get(number, ()):
            break
        if wire == 0:
            value, next_pos = read_varint(data, after_tag, end)
            if value is None:
                break
        else:
            length, after_len = read_varint(data, after_tag, end)
            if length is None or after_len + length > end:
                break
            next_pos = after_len + length
        pos = next_pos
        boundaries.append(pos)
    return boundaries


def parse_at(data, start, expected_name):
    """The longest complete FileDescriptorProto starting at `start`, or None."""
    boundaries = field_boundaries(data, start, start + (64 << 20))
    for end in reversed(boundaries):
        blob = data[start:end]
        proto = descriptor_pb2.FileDescriptorProto()
        try:
            if proto.ParseFromString(blob) != len(blob):
                continue
        except (DecodeError, RuntimeError, ValueError):
            continue
        if proto.name == expected_name and proto.name.endswith(".proto"):
            return blob
    return None


def varint_value(raw):
    value, _ = read_varint(raw, 0, len(raw))
    return value


def without_json_names(blob):
    """The file with every field's json_name cleared: the two embeddings differ only there."""
    proto = descriptor_pb2.FileDescriptorProto()
    proto.ParseFromString(blob)

    def clear(message):
        for field in list(message.field) + list(message.extension):
            field.ClearField("json_name")
        for nested in message.nested_type:
            clear(nested)

    for message in proto.message_type:
        clear(message)
    for field in proto.extension:
        field.ClearField("json_name")
    return proto.SerializeToString(deterministic=True)


def extract(path):
    """({file name: serialized FileDescriptorProto}, notes) for every file embedded in the binary.

    A file may be embedded twice: once by protoc's C++ generator (Envoy's own descriptor
    pool, which parses the configuration) and once in gRPC's upb tables, which protoc
    fills with every field's json_name. The copies must agree once json_name is set
    aside; the C++ copy (without json_name) is kept, as it is the one Envoy parses with.
    Copies that disagree otherwise are reported and the longest is kept."""
    with open(path, "rb") as f:
        data = f.read()
    copies = {}
    for match in CANDIDATE.finditer(data):
        name = match.group(2).decode()
        if varint_value(match.group(1)) != len(match.group(2)):
            continue
        blob = parse_at(data, match.start(), name)
        if blob is not None:
            found = copies.setdefault(name, [])
            if blob not in found:
                found.append(blob)
    files, notes = {}, []
    for name, found in copies.items():
        if len(found) == 1:
            files[name] = found[0]
            continue
        if len({without_json_names(blob) for blob in found}) > 1:
            notes.append(f"{name}: {len(found)} different copies ({', '.join(str(len(b)) for b in found)} bytes), kept the longest")
            files[name] = max(found, key=len)
        else:
            files[name] = min(found, key=len)
    return files, notes


def dependency_order(parsed, roots):
    """Names in dependency order (every file after its dependencies); raises on a missing one."""
    ordered, seen, missing = [], set(), set()

    def visit(name, chain):
        if name in seen:
            return
        if name not in parsed:
            missing.add(f"{name} (needed by {chain})")
            return
        seen.add(name)
        for dependency in parsed[name].dependency:
            visit(dependency, name)
        ordered.append(name)

    for name in roots:
        visit(name, "root")
    if missing:
        raise SystemExit("extract_envoy_descriptors: dependencies not found in the binary: " + ", ".join(sorted(missing)))
    return ordered


def descriptor_set(files):
    """A FileDescriptorSet (dependency order) holding every extracted file."""
    parsed = {}
    for name, blob in files.items():
        proto = descriptor_pb2.FileDescriptorProto()
        proto.ParseFromString(blob)
        parsed[name] = proto
    result = descriptor_pb2.FileDescriptorSet()
    for name in dependency_order(parsed, sorted(parsed)):
        # Bytes exactly as found: options and unknown extensions are kept.
        result.file.add().ParseFromString(files[name])
    return result


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    files, notes = extract(sys.argv[1])
    for note in notes:
        print("extract_envoy_descriptors: " + note, file=sys.stderr)
    result = descriptor_set(files)
    data = result.SerializeToString(deterministic=True)
    with open(sys.argv[2] + ".tmp", "wb") as f:
        f.write(data)
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
    print(f"extract_envoy_descriptors: {len(result.file)} files ({len(data)} bytes) from {sys.argv[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

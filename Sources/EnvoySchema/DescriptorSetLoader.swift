// Turns the embedded FileDescriptorSet into a DescriptorPool. The set is parsed
// by protobuf-c (descriptor.proto is a fixed-schema message); this is the only
// file of EnvoySchema that touches protobuf-c.
internal import CEnvoyProto
internal import CProtobufC

enum DescriptorSetLoader {
    static func loadEmbedded() throws(SchemaLoadError) -> DescriptorPool {
        var length = 0
        let base = meshctl_envoy_descriptor_set(&length)!
        return try load(UnsafeBufferPointer(start: base, count: length))
    }

    /// The pinned Envoy's extension registry, as embedded JSON.
    static func embeddedExtensionsJSON() -> [UInt8] {
        var length = 0
        let base = meshctl_envoy_extensions_json(&length)!
        return Array(UnsafeBufferPointer(start: base, count: length))
    }

    static func load(_ bytes: UnsafeBufferPointer<UInt8>) throws(SchemaLoadError) -> DescriptorPool {
        guard let set = google__protobuf__file_descriptor_set__unpack(nil, bytes.count, bytes.baseAddress) else {
            throw SchemaLoadError(description: "the embedded Envoy descriptor set does not parse as a FileDescriptorSet")
        }
        defer { google__protobuf__file_descriptor_set__free_unpacked(set, nil) }
        var builder = PoolBuilder()
        let files = UnsafeBufferPointer(start: set.pointee.file, count: set.pointee.n_file)
        // Pass 1: give every type an ID, so fields can refer to types declared later.
        for file in files { builder.declare(file: file!) }
        // Pass 2: fields, oneofs, options.
        for file in files { try builder.define(file: file!) }
        return try builder.finish()
    }
}

private func string(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

/// Raw bytes of the extension fields protobuf-c kept as unknown fields of an options message.
private func extensionBytes(_ base: ProtobufCMessage, number: Int32) -> [UInt8]? {
    guard base.n_unknown_fields > 0, let unknown = base.unknown_fields else { return nil }
    var found: [UInt8]?
    for i in 0..<Int(base.n_unknown_fields) where unknown[i].tag == UInt32(number) {
        let raw = UnsafeBufferPointer(start: unknown[i].data, count: unknown[i].len)
        var bytes = Array(raw)
        if unknown[i].wire_type == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED {
            // protobuf-c keeps the length prefix in `data`; drop it.
            var reader = WireReader(bytes: bytes, pool: DescriptorPool.empty)
            guard let length = try? reader.varint() else { continue }
            bytes = Array(bytes[reader.offset..<min(bytes.count, reader.offset + Int(length))])
        }
        // Repeated occurrences of a message-typed option concatenate (protobuf merge semantics).
        found = (found ?? []) + bytes
    }
    return found
}

private struct PendingOptions {
    var fieldRules: [(message: Int, field: Int, bytes: [UInt8])] = []
    var oneofRequired: [(message: Int, oneof: Int)] = []
}

private struct PoolBuilder {
    var messages: [MessageDescriptor?] = []
    var enums: [EnumDescriptor] = []
    var messageIDByName: [String: MessageID] = [:]
    var enumIDByName: [String: EnumID] = [:]
    var extensions: [String: ExtensionDescriptor] = [:]
    var fileNames: [String] = []
    var pending = PendingOptions()
    var disallowedFields: [(message: Int, field: Int)] = []
    var sensitiveFields: [(message: Int, field: Int)] = []

    // Extension numbers of the annotations meshctl reads (from validate.proto,
    // envoy/annotations/deprecation.proto, udpa/annotations/sensitive.proto).
    // They are checked against the set's own extension declarations in finish().
    static let validateRules: Int32 = 1071
    static let validateRequired: Int32 = 1071
    static let validateDisabled: Int32 = 1071
    static let validateIgnored: Int32 = 1072
    static let disallowedByDefault: Int32 = 189_503_207
    static let sensitive: Int32 = 76_569_463

    mutating func declare(file: UnsafeMutablePointer<Google__Protobuf__FileDescriptorProto>) {
        let package = string(file.pointee.package)
        let prefix = package.isEmpty ? "" : package + "."
        for i in 0..<file.pointee.n_message_type { declare(message: file.pointee.message_type[i]!, prefix: prefix) }
        for i in 0..<file.pointee.n_enum_type { declare(enum: file.pointee.enum_type[i]!, prefix: prefix, closed: string(file.pointee.syntax) != "proto3") }
    }

    mutating func declare(message: UnsafeMutablePointer<Google__Protobuf__DescriptorProto>, prefix: String) {
        let fullName = prefix + string(message.pointee.name)
        messageIDByName[fullName] = MessageID(messages.count)
        messages.append(nil)
        for i in 0..<message.pointee.n_nested_type { declare(message: message.pointee.nested_type[i]!, prefix: fullName + ".") }
        for i in 0..<message.pointee.n_enum_type { declare(enum: message.pointee.enum_type[i]!, prefix: fullName + ".", closed: false) }
    }

    mutating func declare(enum proto: UnsafeMutablePointer<Google__Protobuf__EnumDescriptorProto>, prefix: String, closed: Bool) {
        let fullName = prefix + string(proto.pointee.name)
        var values: [(name: String, number: Int32)] = []
        for i in 0..<proto.pointee.n_value {
            values.append((string(proto.pointee.value[i]!.pointee.name), proto.pointee.value[i]!.pointee.number))
        }
        var byName: [String: Int32] = [:]
        var byNumber: [Int32: String] = [:]
        for value in values {
            byName[value.name] = value.number
            if byNumber[value.number] == nil { byNumber[value.number] = value.name }
        }
        enumIDByName[fullName] = EnumID(enums.count)
        enums.append(EnumDescriptor(fullName: fullName, values: values, isClosed: closed, numberByName: byName, nameByNumber: byNumber))
    }

    mutating func define(file: UnsafeMutablePointer<Google__Protobuf__FileDescriptorProto>) throws(SchemaLoadError) {
        fileNames.append(string(file.pointee.name))
        let package = string(file.pointee.package)
        let prefix = package.isEmpty ? "" : package + "."
        let syntax = string(file.pointee.syntax)
        let isProto3 = syntax == "proto3"
        for i in 0..<file.pointee.n_message_type { try define(message: file.pointee.message_type[i]!, prefix: prefix, proto3: isProto3) }
        for i in 0..<file.pointee.n_extension { defineExtension(file.pointee.extension[i]!, prefix: prefix) }
    }

    mutating func defineExtension(_ field: UnsafeMutablePointer<Google__Protobuf__FieldDescriptorProto>, prefix: String) {
        let fullName = prefix + string(field.pointee.name)
        let typeName = string(field.pointee.type_name)
        extensions[fullName] = ExtensionDescriptor(
            fullName: fullName, extendee: String(string(field.pointee.extendee).dropFirst()), number: field.pointee.number,
            kind: FieldKind(rawValue: Int(field.pointee.type.rawValue)) ?? .bytes, typeName: typeName.isEmpty ? nil : String(typeName.dropFirst()))
    }

    mutating func define(message proto: UnsafeMutablePointer<Google__Protobuf__DescriptorProto>, prefix: String, proto3: Bool) throws(SchemaLoadError) {
        let fullName = prefix + string(proto.pointee.name)
        let id = Int(messageIDByName[fullName]!)
        for i in 0..<proto.pointee.n_nested_type { try define(message: proto.pointee.nested_type[i]!, prefix: fullName + ".", proto3: proto3) }
        for i in 0..<proto.pointee.n_extension { defineExtension(proto.pointee.extension[i]!, prefix: fullName + ".") }

        var oneofs: [OneofDescriptor] = []
        var oneofRequired: [Int] = []
        for i in 0..<proto.pointee.n_oneof_decl {
            let oneof = proto.pointee.oneof_decl[i]!
            if let options = oneof.pointee.options, let bytes = extensionBytes(options.pointee.base, number: Self.validateRequired),
               bytes.first.map({ $0 != 0 }) == true {
                oneofRequired.append(i)
            }
            oneofs.append(OneofDescriptor(name: string(oneof.pointee.name), memberFields: [], isRequired: false, isSynthetic: false))
        }

        var fields: [FieldDescriptor] = []
        var rulesBytes: [(number: Int32, bytes: [UInt8])] = []
        var syntheticOneofs = Set<Int>()
        for i in 0..<proto.pointee.n_field {
            let f = proto.pointee.field[i]!.pointee
            guard let kind = FieldKind(rawValue: Int(f.type.rawValue)) else {
                throw SchemaLoadError(description: "\(fullName).\(string(f.name)): unknown field type \(f.type.rawValue)")
            }
            let typeName = String(string(f.type_name).dropFirst())
            var messageType: MessageID?
            var enumType: EnumID?
            if kind == .message || kind == .group {
                guard let t = messageIDByName[typeName] else { throw SchemaLoadError(description: "\(fullName).\(string(f.name)): unknown message type \(typeName)") }
                messageType = t
            } else if kind == .enum {
                guard let t = enumIDByName[typeName] else { throw SchemaLoadError(description: "\(fullName).\(string(f.name)): unknown enum type \(typeName)") }
                enumType = t
            }
            let isRepeated = f.label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED
            let options = f.options?.pointee
            let packedOption: Bool? = (options?.has_packed ?? 0) != 0 ? options!.packed != 0 : nil
            let isProto3Optional = f.has_proto3_optional != 0 && f.proto3_optional != 0
            let oneofIndex: Int? = f.has_oneof_index != 0 ? Int(f.oneof_index) : nil
            if isProto3Optional, let o = oneofIndex { syntheticOneofs.insert(o) }
            let hasPresence = !isRepeated && (kind == .message || kind == .group || oneofIndex != nil || !proto3)
            let name = string(f.name)
            let jsonName = f.json_name.map { String(cString: $0) } ?? Self.jsonName(name)
            fields.append(FieldDescriptor(
                name: name, jsonName: jsonName, number: f.number, kind: kind, isRepeated: isRepeated,
                isPacked: isRepeated && kind.isPackable && (packedOption ?? proto3),
                hasPresence: hasPresence, oneofIndex: oneofIndex, messageType: messageType, enumType: enumType, rules: nil,
                isDeprecated: (options?.has_deprecated ?? 0) != 0 && options!.deprecated != 0,
                isDisallowedByDefault: false, isSensitive: false))
            if let options {
                if let bytes = extensionBytes(options.base, number: Self.validateRules) { rulesBytes.append((f.number, bytes)) }
                if let bytes = extensionBytes(options.base, number: Self.disallowedByDefault), bytes.first.map({ $0 != 0 }) == true {
                    disallowedFields.append((id, Int(f.number)))
                }
                if let bytes = extensionBytes(options.base, number: Self.sensitive), bytes.first.map({ $0 != 0 }) == true {
                    sensitiveFields.append((id, Int(f.number)))
                }
            }
        }
        fields.sort { $0.number < $1.number }
        var byName: [String: Int] = [:]
        var byNumber: [Int32: Int] = [:]
        for (index, field) in fields.enumerated() {
            byName[field.name] = index
            if byName[field.jsonName] == nil { byName[field.jsonName] = index }
            byNumber[field.number] = index
            if let o = field.oneofIndex { oneofs[o].memberFields.append(index) }
        }
        for o in syntheticOneofs {
            oneofs[o] = OneofDescriptor(name: oneofs[o].name, memberFields: oneofs[o].memberFields, isRequired: false, isSynthetic: true)
        }
        for o in oneofRequired { oneofs[o].isRequired = true }
        for (number, bytes) in rulesBytes { pending.fieldRules.append((id, byNumber[number]!, bytes)) }

        let options = proto.pointee.options?.pointee
        let isMapEntry = (options?.has_map_entry ?? 0) != 0 && options!.map_entry != 0
        var disabled = false, ignored = false
        if let options {
            disabled = extensionBytes(options.base, number: Self.validateDisabled)?.first.map { $0 != 0 } ?? false
            ignored = extensionBytes(options.base, number: Self.validateIgnored)?.first.map { $0 != 0 } ?? false
        }
        messages[id] = MessageDescriptor(
            fullName: fullName, fields: fields, oneofs: oneofs, isMapEntry: isMapEntry,
            wellKnownType: Self.wellKnownType(fullName), isValidationDisabled: disabled, isValidationIgnored: ignored,
            isDeprecated: (options?.has_deprecated ?? 0) != 0 && options!.deprecated != 0,
            fieldIndexByName: byName, fieldIndexByNumber: byNumber)
    }

    /// protoc's default JSON name: underscores dropped, the letter after each one upper-cased.
    static func jsonName(_ name: String) -> String {
        var out = ""
        var upper = false
        for ch in name {
            if ch == "_" { upper = true; continue }
            out += upper ? ch.uppercased() : String(ch)
            upper = false
        }
        return out
    }

    static func wellKnownType(_ name: String) -> WellKnownType? {
        switch name {
        case "google.protobuf.Any": return .any
        case "google.protobuf.Duration": return .duration
        case "google.protobuf.Timestamp": return .timestamp
        case "google.protobuf.FieldMask": return .fieldMask
        case "google.protobuf.Struct": return .struct
        case "google.protobuf.Value": return .value
        case "google.protobuf.ListValue": return .listValue
        case "google.protobuf.Empty": return .empty
        case "google.protobuf.DoubleValue": return .wrapper(.double)
        case "google.protobuf.FloatValue": return .wrapper(.float)
        case "google.protobuf.Int64Value": return .wrapper(.int64)
        case "google.protobuf.UInt64Value": return .wrapper(.uint64)
        case "google.protobuf.Int32Value": return .wrapper(.int32)
        case "google.protobuf.UInt32Value": return .wrapper(.uint32)
        case "google.protobuf.BoolValue": return .wrapper(.bool)
        case "google.protobuf.StringValue": return .wrapper(.string)
        case "google.protobuf.BytesValue": return .wrapper(.bytes)
        default: return nil
        }
    }

    mutating func finish() throws(SchemaLoadError) -> DescriptorPool {
        var resolved: [MessageDescriptor] = []
        resolved.reserveCapacity(messages.count)
        for (index, message) in messages.enumerated() {
            guard let message else { throw SchemaLoadError(description: "message #\(index) was declared but never defined") }
            resolved.append(message)
        }
        for (name, number) in [("validate.rules", Self.validateRules), ("validate.required", Self.validateRequired),
                               ("validate.disabled", Self.validateDisabled), ("validate.ignored", Self.validateIgnored),
                               ("envoy.annotations.disallowed_by_default", Self.disallowedByDefault),
                               ("udpa.annotations.sensitive", Self.sensitive)] {
            guard extensions[name]?.number == number else {
                throw SchemaLoadError(description: "extension \(name) is not field \(number) in this descriptor set; meshctl reads it by that number")
            }
        }
        for (message, number) in disallowedFields {
            let index = resolved[message].fieldIndexByNumber[Int32(number)]!
            resolved[message].fields[index].isDisallowedByDefault = true
        }
        for (message, number) in sensitiveFields {
            let index = resolved[message].fieldIndexByNumber[Int32(number)]!
            resolved[message].fields[index].isSensitive = true
        }
        // The rules are validate.FieldRules messages: decode them with the schema itself.
        let schemaOnly = DescriptorPool(messages: resolved, enums: enums, extensions: extensions, fileNames: fileNames,
                                        messageIDByName: messageIDByName, enumIDByName: enumIDByName)
        guard let fieldRulesType = schemaOnly.messageID(named: "validate.FieldRules") else {
            throw SchemaLoadError(description: "validate.FieldRules is missing from the descriptor set")
        }
        for (message, field, bytes) in pending.fieldRules {
            do {
                let rulesMessage = try DynamicMessage(serialized: bytes, type: fieldRulesType, pool: schemaOnly)
                resolved[message].fields[field].rules = try FieldRules(rulesMessage, pool: schemaOnly)
            } catch {
                throw SchemaLoadError(description: "\(resolved[message].fullName).\(resolved[message].fields[field].name): unreadable validate.rules \(bytes): \(error)")
            }
        }
        for message in resolved {
            message.checkedFields = message.fields.indices.compactMap { i in
                let field = message.fields[i]
                guard field.rules != nil || field.kind == .message else { return nil }
                return CheckedField(index: i, hasRules: field.rules != nil)
            }
        }
        return DescriptorPool(messages: resolved, enums: enums, extensions: extensions, fileNames: fileNames,
                              messageIDByName: messageIDByName, enumIDByName: enumIDByName)
    }
}

extension DescriptorPool {
    /// A pool with no types, for reading raw varints.
    static let empty = DescriptorPool(messages: [], enums: [], extensions: [:], fileNames: [], messageIDByName: [:], enumIDByName: [:])
}

// The proto3 JSON mapping's special forms: Any with "@type", Duration "1.5s",
// Timestamp RFC 3339, FieldMask "a.b,c", Struct/Value/ListValue as plain JSON,
// wrappers as bare scalars, Empty as {}.
import Foundation

extension TextReader {
    mutating func readWellKnown(_ node: YAMLNode, type: MessageID, kind: WellKnownType, depth: Int) -> DynamicMessage? {
        var message = DynamicMessage(type: type, location: location(node))
        switch kind {
        case .any:
            return readAny(node, type: type, depth: depth)
        case .duration, .timestamp:
            if case .mapping(let mapping) = node.kind {
                // Envoy's parser also takes the message form {seconds: 1, nanos: 5}.
                report("schema.noncanonical-form", kind.isDuration ? "write durations as strings such as \"1.5s\"; the {seconds, nanos} form is accepted but non-standard"
                                                                   : "write timestamps as RFC 3339 strings; the {seconds, nanos} form is accepted but non-standard", at: node, severity: .warning)
                readFields(mapping, into: &message, descriptor: pool.message(type), skipping: nil, depth: depth)
                return message
            }
            guard case .scalar(let s) = node.kind, case .string(let text) = classify(s) else {
                report("schema.type-mismatch", kind.isDuration
                       ? "expected a duration string such as \"1.5s\" or \"0.250s\", got \(describe(node))"
                       : "expected an RFC 3339 timestamp such as \"2024-01-01T00:00:00Z\", got \(describe(node))", at: node)
                return nil
            }
            let parsed = kind.isDuration ? TimeText.parseDuration(text) : TimeText.parseTimestamp(text)
            guard let (seconds, nanos) = parsed else {
                report("schema.invalid-\(kind.isDuration ? "duration" : "timestamp")", kind.isDuration
                       ? "\"\(text)\" is not a valid duration: write seconds with an 's' suffix and at most 9 fractional digits, e.g. \"1s\", \"0.25s\" (range ±315576000000s)"
                       : "\"\(text)\" is not a valid RFC 3339 timestamp (e.g. \"2024-01-01T00:00:00Z\", years 0001-9999)", at: node)
                return nil
            }
            if seconds != 0 { message.fields.append(FieldValue(fieldIndex: 0, value: .int(seconds))) }
            if nanos != 0 { message.fields.append(FieldValue(fieldIndex: 1, value: .int(Int64(nanos)))) }
            return message
        case .fieldMask:
            guard case .scalar(let s) = node.kind, case .string(let text) = classify(s) else {
                report("schema.type-mismatch", "expected a field mask string such as \"fooBar,baz.qux\", got \(describe(node))", at: node)
                return nil
            }
            let paths = text.isEmpty ? [] : text.split(separator: ",", omittingEmptySubsequences: false).map { snakeCase(String($0)) }
            if !paths.isEmpty {
                message.fields.append(FieldValue(fieldIndex: 0, value: .list(paths.map { ListElement(.string($0)) })))
            }
            return message
        case .wrapper(let wrapped):
            if case .mapping(let mapping) = node.kind, mapping.count == 1, mapping.first?.key.scalar?.string == "value" {
                report("schema.noncanonical-form", "wrapper values are written bare (e.g. 5, not {value: 5}); the object form is accepted but non-standard", at: node, severity: .warning)
                readFields(mapping, into: &message, descriptor: pool.message(type), skipping: nil, depth: depth)
                return message
            }
            guard case .scalar(let s) = node.kind else {
                report("schema.type-mismatch", "expected a bare \(wrapped) value (wrapper types are written without {value: ...}), got \(describe(node))", at: node)
                return nil
            }
            switch convertScalar(classify(s), kind: wrapped, enumType: nil) {
            case .success(let v):
                message.fields.append(FieldValue(fieldIndex: 0, value: v, location: location(node)))
                return message
            case .failure(let problem):
                report(problem.rule, problem.message, at: node)
                return nil
            }
        case .empty:
            guard case .mapping(let m) = node.kind, m.isEmpty else {
                report("schema.type-mismatch", "expected an empty object {}, got \(describe(node))", at: node)
                return nil
            }
            return message
        case .struct:
            guard case .mapping = node.kind else {
                report("schema.type-mismatch", "expected an object (google.protobuf.Struct), got \(describe(node))", at: node)
                return nil
            }
            return readStructValue(node, depth: depth).flatMap { value in
                guard case .message(let v) = value, case .message(let structMessage)? = v.fields.first?.value else { return nil }
                return structMessage
            }
        case .value:
            return readStructValue(node, depth: depth).flatMap(\.messageValue)
        case .listValue:
            guard case .sequence = node.kind else {
                report("schema.type-mismatch", "expected a list (google.protobuf.ListValue), got \(describe(node))", at: node)
                return nil
            }
            return readStructValue(node, depth: depth).flatMap { value in
                guard case .message(let v) = value, case .message(let list)? = v.fields.first?.value else { return nil }
                return list
            }
        case .nullValue:
            return message
        }
    }

    /// Any JSON value as a google.protobuf.Value message.
    mutating func readStructValue(_ node: YAMLNode, depth: Int) -> ProtoValue? {
        guard depth < maximumMessageDepth,
              let valueType = pool.messageID(named: "google.protobuf.Value"),
              let structType = pool.messageID(named: "google.protobuf.Struct"),
              let listType = pool.messageID(named: "google.protobuf.ListValue") else {
            report("schema.too-deep", "values are nested more than \(maximumMessageDepth) levels deep", at: node)
            return nil
        }
        let valueDescriptor = pool.message(valueType)
        var value = DynamicMessage(type: valueType, location: location(node))
        func set(_ name: String, _ v: ProtoValue) {
            value.fields = [FieldValue(fieldIndex: valueDescriptor.fieldIndex(named: name)!, value: v, location: location(node))]
        }
        switch node.kind {
        case .scalar(let s):
            switch classify(s) {
            case .null: set("null_value", .enumNumber(0))
            case .bool(let b): set("bool_value", .bool(b))
            case .integer(let t), .number(let t):
                guard let d = Self.parseJSONNumber(t) else {
                    report("schema.type-mismatch", "\(t) is not a number", at: node)
                    return nil
                }
                set("number_value", .double(d))
            case .string(let str) where syntax == .yaml && s.style == .plain && Self.yamlInteger(str) != nil:
                set("number_value", .double(Double(Self.yamlInteger(str)!)))
            case .string(let str):
                // A plain YAML float (0.25, 1.5e3, .inf) is a number, as YAML means it; Envoy's own
                // bootstrap loader would keep it a string, but nothing a user means by it is a string.
                if syntax == .yaml && s.style == .plain, let d = Self.yamlFloat(str) {
                    set("number_value", .double(d))
                } else {
                    set("string_value", .string(str))
                }
            }
        case .mapping(let mapping):
            var structMessage = DynamicMessage(type: structType, location: location(node))
            let entryType = pool.message(structType).fields[0].messageType!
            var entries: [ListElement] = []
            var seen = Set<String>()
            for (keyNode, valueNode) in pairs(mapping) {
                guard case .scalar(let k) = keyNode.kind else {
                    report("schema.type-mismatch", "object keys must be strings, got \(describe(keyNode))", at: keyNode)
                    continue
                }
                path.push(.key(k.string))
                defer { path.pop() }
                guard seen.insert(k.string).inserted else {
                    report("schema.duplicate-field", "key \"\(k.string)\" appears twice; keep one", at: keyNode)
                    continue
                }
                guard let v = readStructValue(valueNode, depth: depth + 1) else { continue }
                var entry = DynamicMessage(type: entryType, location: location(keyNode))
                entry.fields = [FieldValue(fieldIndex: 0, value: .string(k.string)), FieldValue(fieldIndex: 1, value: v, location: location(valueNode))]
                entries.append(ListElement(.message(entry), location: location(keyNode)))
            }
            if !entries.isEmpty { structMessage.fields = [FieldValue(fieldIndex: 0, value: .list(entries))] }
            set("struct_value", .message(structMessage))
        case .sequence(let sequence):
            var list = DynamicMessage(type: listType, location: location(node))
            var elements: [ListElement] = []
            for (i, element) in sequence.enumerated() {
                path.push(.index(i))
                if let v = readStructValue(element, depth: depth + 1) { elements.append(ListElement(v, location: location(element))) }
                path.pop()
            }
            if !elements.isEmpty { list.fields = [FieldValue(fieldIndex: 0, value: .list(elements))] }
            set("list_value", .message(list))
        }
        return .message(value)
    }

    mutating func readAny(_ node: YAMLNode, type: MessageID, depth: Int) -> DynamicMessage? {
        guard case .mapping(let mapping) = node.kind else {
            report("schema.type-mismatch", "expected an object with \"@type\" (google.protobuf.Any), got \(describe(node))", at: node)
            return nil
        }
        var any = DynamicMessage(type: type, location: location(node))
        let entries = pairs(mapping)
        if entries.isEmpty { return any }
        guard let typeEntry = entries.first(where: { $0.key.scalar?.string == "@type" }) else {
            report("schema.any-missing-type", "this google.protobuf.Any has no \"@type\"; add \"@type: type.googleapis.com/<full message name>\"", at: node)
            return nil
        }
        guard case .scalar(let typeScalar) = typeEntry.value.kind, case .string(let typeURL) = classify(typeScalar) else {
            report("schema.type-mismatch", "\"@type\" must be a string type URL", at: typeEntry.value)
            return nil
        }
        // A byte search: `String.contains(String)` goes through Foundation's locale-aware string search
        // (CFStringFind), 1% of a 10,000-service validate for this one check per Any.
        guard typeURL.utf8.contains(UInt8(ascii: "/")), let innerType = pool.messageID(typeURL: typeURL) else {
            let name = typeURL.split(separator: "/").last.map(String.init) ?? typeURL
            let hint = typeURL.contains("/") ? suggestionForType(name) : "; a type URL looks like type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
            report("schema.unresolvable-any", "cannot resolve \"@type\": \(typeURL) is not a message type of the Envoy API\(hint)", at: typeEntry.value)
            return nil
        }
        any.fields.append(FieldValue(fieldIndex: 0, value: .string(typeURL), location: location(typeEntry.key)))
        path.push(.anyType(typeURL))
        defer { path.pop() }
        let inner = pool.message(innerType)
        var payload: DynamicMessage?
        if inner.wellKnownType != nil {
            // Well-known types inside Any carry their JSON form under "value".
            let rest = entries.filter { $0.key.scalar?.string != "@type" }
            for extra in rest where extra.key.scalar?.string != "value" {
                report("schema.unknown-field", "an Any holding \(inner.fullName) takes only \"@type\" and \"value\"; remove '\(extra.key.scalar?.string ?? "?")'", at: extra.key)
            }
            if let valueNode = rest.first(where: { $0.key.scalar?.string == "value" })?.value {
                payload = readMessage(valueNode, type: innerType, depth: depth + 1)
            } else {
                payload = DynamicMessage(type: innerType, location: location(node))
            }
        } else {
            var message = DynamicMessage(type: innerType, location: location(node))
            readFields(mapping, into: &message, descriptor: inner, skipping: "@type", depth: depth + 1)
            payload = message
        }
        guard let payload else { return any }
        any.fields.append(FieldValue(fieldIndex: 1, value: .message(payload), location: location(node)))
        return any
    }

    /// YAML's float spellings (a '.' is required, as in YAML 1.1), plus .inf and .nan.
    static func yamlFloat(_ text: String) -> Double? {
        switch text {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        case ".nan", ".NaN", ".NAN": return .nan
        default: break
        }
        guard text.contains("."), text.range(of: #"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?$"#, options: .regularExpression) != nil,
              text != ".", text != "+.", text != "-." else { return nil }
        return Double(text.replacingOccurrences(of: "_", with: ""))
    }

    func suggestionForType(_ name: String) -> String {
        let matches = pool.similarMessageNames(to: name).filter { !$0.contains(".v2.") }
        if matches.isEmpty { return "; check the spelling and the API version (v3)" }
        return "; did you mean \(matches.prefix(3).joined(separator: " or "))?"
    }
}

extension WellKnownType {
    var isDuration: Bool { if case .duration = self { return true } else { return false } }
}

/// lowerCamelCase field-mask path → snake_case, as the JSON mapping specifies.
func snakeCase(_ path: String) -> String {
    var out = ""
    for ch in path {
        if ch.isUppercase {
            out += "_" + ch.lowercased()
        } else {
            out.append(ch)
        }
    }
    return out
}

/// Duration and Timestamp text forms.
enum TimeText {
    static let maxDurationSeconds: Int64 = 315_576_000_000

    /// "1.5s", "-0.25s": seconds and nanoseconds with the same sign. The grammar is
    /// `-?[0-9]+(\.[0-9]{1,9})?s`, read as bytes: every route and cluster has durations, and
    /// reading them as Characters (split, allSatisfy, Int64(Substring)) cost 5% of a validation.
    static func parseDuration(_ text: String) -> (Int64, Int32)? {
        var text = text
        return text.withUTF8 { bytes -> (Int64, Int32)? in
            guard let last = bytes.last, last == UInt8(ascii: "s") else { return nil }
            let end = bytes.count - 1
            var i = 0
            let negative = end > 0 && bytes[0] == UInt8(ascii: "-")
            if negative { i = 1 }
            let wholeStart = i
            var seconds: Int64 = 0
            while i < end, bytes[i] >= 0x30 && bytes[i] <= 0x39 {
                let (scaled, o1) = seconds.multipliedReportingOverflow(by: 10)
                let (sum, o2) = scaled.addingReportingOverflow(Int64(bytes[i] - 0x30))
                guard !o1 && !o2 else { return nil }
                seconds = sum
                i += 1
            }
            guard i > wholeStart, seconds <= maxDurationSeconds else { return nil }
            var nanos: Int64 = 0
            if i < end {
                guard bytes[i] == UInt8(ascii: ".") else { return nil }
                i += 1
                let fractionStart = i
                while i < end, bytes[i] >= 0x30 && bytes[i] <= 0x39, i - fractionStart < 9 {
                    nanos = nanos * 10 + Int64(bytes[i] - 0x30)
                    i += 1
                }
                let digits = i - fractionStart
                guard digits > 0, i == end else { return nil }
                for _ in digits..<9 { nanos *= 10 }
            }
            return negative ? (-seconds, -Int32(nanos)) : (seconds, Int32(nanos))
        }
    }

    static func formatDuration(seconds: Int64, nanos: Int32) -> String {
        let negative = seconds < 0 || nanos < 0
        var text = negative ? "-" : ""
        text += String(seconds.magnitude)
        if nanos != 0 { text += "." + fraction(nanos.magnitude) }
        return text + "s"
    }

    /// 3, 6 or 9 digits, as protobuf prints fractions.
    static func fraction(_ nanos: UInt32) -> String {
        let digits = String(nanos)
        let nine = String(repeating: "0", count: max(0, 9 - digits.utf8.count)) + digits  // %09u
        if nanos % 1_000_000 == 0 { return String(nine.prefix(3)) }
        if nanos % 1_000 == 0 { return String(nine.prefix(6)) }
        return nine
    }

    /// RFC 3339 → seconds since the Unix epoch and nanoseconds.
    static func parseTimestamp(_ text: String) -> (Int64, Int32)? {
        let chars = Array(text.utf8)
        func digits(_ at: Int, _ n: Int) -> Int? {
            guard at + n <= chars.count else { return nil }
            var v = 0
            for c in chars[at..<at + n] {
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard chars.count >= 20, let year = digits(0, 4), chars[4] == 45, let month = digits(5, 2), chars[7] == 45, let day = digits(8, 2),
              chars[10] == 84 || chars[10] == 116, let hour = digits(11, 2), chars[13] == 58, let minute = digits(14, 2), chars[16] == 58,
              let second = digits(17, 2), year >= 1, (1...12).contains(month), hour < 24, minute < 60, second < 60 else { return nil }
        let daysInMonth = [31, (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day >= 1 && day <= daysInMonth[month - 1] else { return nil }
        var at = 19
        var nanos: Int32 = 0
        if at < chars.count && chars[at] == 46 {
            at += 1
            var n = 0
            var count = 0
            while at < chars.count, chars[at] >= 48 && chars[at] <= 57 {
                guard count < 9 else { return nil }
                n = n * 10 + Int(chars[at] - 48)
                count += 1
                at += 1
            }
            guard count > 0 else { return nil }
            for _ in count..<9 { n *= 10 }
            nanos = Int32(n)
        }
        guard at < chars.count else { return nil }
        var offset = 0
        if chars[at] == 90 || chars[at] == 122 {
            at += 1
        } else if chars[at] == 43 || chars[at] == 45 {
            guard let oh = digits(at + 1, 2), chars.count > at + 3, chars[at + 3] == 58, let om = digits(at + 4, 2) else { return nil }
            offset = (oh * 60 + om) * 60 * (chars[at] == 43 ? 1 : -1)
            at += 6
        } else { return nil }
        guard at == chars.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offset)
        return (seconds, nanos)
    }

    static func formatTimestamp(seconds: Int64, nanos: Int32) -> String {
        let days = Int(seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400)
        let secondOfDay = Int(seconds - Int64(days) * 86400)
        let (y, m, d) = civilFromDays(days)
        var text = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", y, m, d, secondOfDay / 3600, secondOfDay / 60 % 60, secondOfDay % 60)
        if nanos != 0 { text += "." + fraction(UInt32(nanos)) }
        return text + "Z"
    }

    // Howard Hinnant's days-from-civil algorithms.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp + (mp < 10 ? 3 : -9)
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

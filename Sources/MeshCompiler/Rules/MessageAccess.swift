// Read access by field name to decoded Envoy resources, for the compiler's rules.
import EnvoySchema

/// Steps from the resource root, rendered into a field path only when a problem is reported.
final class FieldTrail: Sendable {
    let parent: FieldTrail?
    let step: String

    init(parent: FieldTrail?, step: String) {
        self.parent = parent
        self.step = step
    }

    var rendered: String {
        var steps: [String] = []
        var node: FieldTrail? = self
        while let current = node {
            steps.append(current.step)
            node = current.parent
        }
        var out = ""
        for step in steps.reversed() where !step.isEmpty {
            if !out.isEmpty && !step.hasPrefix("[") { out += "." }
            out += step
        }
        return out
    }
}

/// A field below a trail: the text of `MessageNode.join`, built only when a problem is reported.
struct JoinedPath: Sendable {
    let trail: FieldTrail?
    let name: String

    var rendered: String {
        let base = trail?.rendered ?? ""
        return base.isEmpty ? name : base + "." + name
    }
}

/// A message with its pool and field path from the resource root.
struct MessageNode {
    let pool: DescriptorPool
    let message: DynamicMessage
    let trail: FieldTrail?

    init(pool: DescriptorPool, message: DynamicMessage, path: String) {
        self.pool = pool
        self.message = message
        trail = path.isEmpty ? nil : FieldTrail(parent: nil, step: path)
    }

    init(pool: DescriptorPool, message: DynamicMessage, trail: FieldTrail?) {
        self.pool = pool
        self.message = message
        self.trail = trail
    }

    var path: String { trail?.rendered ?? "" }

    var typeName: String { pool.message(message.type).fullName }
    var location: SourceLocation? { message.location }

    func value(_ name: String) -> ProtoValue? { message.value(named: name, in: pool) }

    func has(_ name: String) -> Bool { value(name) != nil }

    func location(of name: String) -> SourceLocation? {
        pool.message(message.type).fieldIndex(named: name).flatMap { message.value(at: $0)?.location } ?? message.location
    }

    func string(_ name: String) -> String? { value(name)?.stringValue }

    func enumNumber(_ name: String) -> Int32? { if case .enumNumber(let n)? = value(name) { return n } else { return nil } }

    /// The value inside a wrapper message (`google.protobuf.BoolValue` …).
    func wrapped(_ name: String) -> ProtoValue? { value(name)?.messageValue?.value(at: 0)?.value }

    func child(_ name: String) -> MessageNode? {
        value(name)?.messageValue.map { MessageNode(pool: pool, message: $0, trail: FieldTrail(parent: trail, step: name)) }
    }

    func children(_ name: String) -> [MessageNode] {
        guard let list = value(name)?.listValue, !list.isEmpty else { return [] }
        let field = FieldTrail(parent: trail, step: name)
        return list.enumerated().compactMap { i, element in
            element.value.messageValue.map { MessageNode(pool: pool, message: $0, trail: FieldTrail(parent: field, step: "[\(i)]")) }
        }
    }

    func strings(_ name: String) -> [String] {
        (value(name)?.listValue ?? []).compactMap { $0.value.stringValue }
    }

    func join(_ name: String) -> String { path.isEmpty ? name : path + "." + name }

    /// `join(name)`, rendered later and only if asked for.
    func joined(_ name: String) -> JoinedPath { JoinedPath(trail: trail, name: name) }

    /// The message packed in an Any field, with its full type name.
    func unpacked(_ name: String) -> (type: String, node: MessageNode)? {
        guard let any = value(name)?.messageValue else { return nil }
        let url = any.value(at: 0)?.value.stringValue ?? ""
        var payload: DynamicMessage?
        switch any.value(at: 1)?.value {
        case .message(let m)?: payload = m
        case .bytes(let b)?: payload = pool.messageID(typeURL: url).flatMap { try? DynamicMessage(serialized: b, type: $0, pool: pool) }
        default: break
        }
        guard let payload else { return nil }
        return (pool.message(payload.type).fullName, MessageNode(pool: pool, message: payload, trail: FieldTrail(parent: trail, step: name)))
    }

    /// A google.protobuf.Duration field in milliseconds.
    func milliseconds(_ name: String) -> Int64? {
        guard let duration = value(name)?.messageValue else { return nil }
        let d = MessageNode(pool: pool, message: duration, path: "")
        var seconds: Int64 = 0, nanos: Int64 = 0
        if case .int(let s)? = d.value("seconds") { seconds = s }
        if case .int(let n)? = d.value("nanos") { nanos = n }
        return seconds * 1000 + nanos / 1_000_000
    }
}

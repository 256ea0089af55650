// Read access by field name to a decoded message, with the field path from the
// document root kept as a trail of steps and rendered only when a problem is
// reported: the engine's Envoy rules and the compiler's mesh rules both read
// resources through it.

/// A field path built as a reader descends, rendered only when a problem is reported.
public final class PathTrail: @unchecked Sendable {
    // @unchecked Sendable: every stored property is a `let`; a trail is never modified after init.
    public let parent: PathTrail?
    private let name: String
    /// A list subscript when not negative: kept as a number and formatted only when rendered
    /// (a walk makes a trail for every list element it visits; most are never reported).
    private let index: Int

    public init(parent: PathTrail?, step: String) {
        self.parent = parent
        self.name = step
        self.index = -1
    }

    /// The step `[index]` of a list element.
    public init(parent: PathTrail?, index: Int) {
        self.parent = parent
        self.name = ""
        self.index = index
    }

    public var step: String { index < 0 ? name : "[\(index)]" }

    /// `a.b[2].c`: steps joined by dots, list and map subscripts attached.
    public var rendered: String {
        var steps: [String] = []
        var node: PathTrail? = self
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

/// A message with its pool and its field path from the document root, read by field name.
public struct MessageView {
    public let pool: DescriptorPool
    public let message: DynamicMessage
    public let trail: PathTrail?

    public init(pool: DescriptorPool, message: DynamicMessage, trail: PathTrail?) {
        self.pool = pool
        self.message = message
        self.trail = trail
    }

    public init(pool: DescriptorPool, message: DynamicMessage, path: String) {
        self.init(pool: pool, message: message, trail: path.isEmpty ? nil : PathTrail(parent: nil, step: path))
    }

    /// The field path of this message from the document root.
    public var path: String { trail?.rendered ?? "" }

    public var descriptor: MessageDescriptor { pool.message(message.type) }
    public var typeName: String { descriptor.fullName }
    public var location: SourceLocation? { message.location }

    public func value(_ name: String) -> ProtoValue? { message.value(named: name, in: pool) }

    public func has(_ name: String) -> Bool { value(name) != nil }

    public func location(of name: String) -> SourceLocation? {
        descriptor.fieldIndex(named: name).flatMap { message.value(at: $0)?.location } ?? message.location
    }

    public func string(_ name: String) -> String? { value(name)?.stringValue }

    public func enumNumber(_ name: String) -> Int32? { if case .enumNumber(let n)? = value(name) { return n } else { return nil } }

    /// The value inside a wrapper message (`google.protobuf.BoolValue` …).
    public func wrapped(_ name: String) -> ProtoValue? { value(name)?.messageValue?.value(at: 0)?.value }

    public func child(_ name: String) -> MessageView? {
        value(name)?.messageValue.map { MessageView(pool: pool, message: $0, trail: PathTrail(parent: trail, step: name)) }
    }

    public func children(_ name: String) -> [MessageView] {
        guard let list = value(name)?.listValue, !list.isEmpty else { return [] }
        let field = PathTrail(parent: trail, step: name)
        return list.enumerated().compactMap { i, element in
            element.value.messageValue.map { MessageView(pool: pool, message: $0, trail: PathTrail(parent: field, index: i)) }
        }
    }

    /// A repeated string field's values with their positions.
    public func strings(_ name: String) -> [(String, SourceLocation?)] {
        (value(name)?.listValue ?? []).compactMap { element in element.value.stringValue.map { ($0, element.location) } }
    }

    /// A repeated string field's values.
    public func stringValues(_ name: String) -> [String] {
        (value(name)?.listValue ?? []).compactMap { $0.value.stringValue }
    }

    /// The path of field `name` of this message.
    public func join(_ name: String) -> String { path.isEmpty ? name : path + "." + name }

    /// The message packed in an Any field, with its full type name.
    public func unpacked(_ name: String) -> (type: String, view: MessageView)? {
        guard let any = value(name)?.messageValue else { return nil }
        let url = any.value(at: 0)?.value.stringValue ?? ""
        var payload: DynamicMessage?
        switch any.value(at: 1)?.value {
        case .message(let m)?: payload = m
        case .bytes(let b)?: payload = pool.messageID(typeURL: url).flatMap { try? DynamicMessage(serialized: b, type: $0, pool: pool) }
        default: break
        }
        guard let payload else { return nil }
        return (pool.message(payload.type).fullName, MessageView(pool: pool, message: payload, trail: PathTrail(parent: trail, step: name)))
    }

    /// A google.protobuf.Duration field in milliseconds.
    public func milliseconds(_ name: String) -> Int64? {
        guard let duration = value(name)?.messageValue else { return nil }
        let d = MessageView(pool: pool, message: duration, path: "")
        var seconds: Int64 = 0, nanos: Int64 = 0
        if case .int(let s)? = d.value("seconds") { seconds = s }
        if case .int(let n)? = d.value("nanos") { nanos = n }
        return seconds * 1000 + nanos / 1_000_000
    }
}

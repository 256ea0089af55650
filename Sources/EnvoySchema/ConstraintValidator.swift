// Checks a DynamicMessage against the protoc-gen-validate rules carried in the
// descriptors, with protoc-gen-validate's semantics: proto3 scalar fields are
// checked even when unset (their value is the default), message rules only when
// the field is set (except `required`). Also compiles every RegexMatcher with
// RE2 and applies Envoy's program-size limit, as Envoy does at config load.
import Foundation

public struct ConstraintValidator: Sendable {
    public let pool: DescriptorPool
    public let file: String?
    public private(set) var diagnostics: [Diagnostic] = []
    var path = FieldPath()
    /// Whether a long list of messages is validated in two halves on two threads: true until a half
    /// is being validated (the halves do not split again).
    var splitsLongLists = true

    /// Envoy's default `re2.max_program_size.error_level`.
    public static let defaultMaxRegexProgramSize = 100

    /// The largest RE2 program a regex may compile to (the runtime key `re2.max_program_size.error_level`).
    public var maxRegexProgramSize = ConstraintValidator.defaultMaxRegexProgramSize

    /// The extension factories the target Envoy has (the pinned build's by default).
    public var extensions = ExtensionRegistry.envoy

    /// Where the message being validated sits (listener or cluster, UDP or TCP, …), for extension slots
    /// whose factory family depends on it. Set when the walk enters a Listener, a Cluster or a filter list.
    public var context = ExtensionContext()
    private let contextTypes: ContextTypes
    /// Shared messages (`DynamicMessage.repeatID`) that passed, with the context they passed in.
    private var checkedRepeats: Set<CheckedRepeat> = []

    /// The messages and fields that set `context`, resolved once.
    struct ContextTypes: Sendable {
        let listener: MessageID?
        let cluster: MessageID?
        /// Owner type → the side of the HTTP filters in its `http_filters` / `upstream_http_filters` list.
        let httpFilterLists: [MessageID: ExtensionContext.Side]
        /// Extension references (a `name` and a `config_type` oneof holding `typed_config`) → that oneof's
        /// index. Network and HTTP filters are left out: the bootstrap rules report their missing config
        /// (envoy.filter-config-missing).
        let extensionConfigOneof: [MessageID: Int]
        /// The `http_filters` / `upstream_http_filters` fields of those owners.
        let httpFilterListFields: Set<ObjectIdentifier>
        /// Extension point fields → their key in ExtensionRegistry.point(_:in:).
        let pointFields: [ObjectIdentifier: String]
        let loadBalancingPolicy: MessageID?
        let cidrRange: MessageID?
        /// The RegexMatcher types, whose regexes are compiled with RE2.
        let regexMatchers: Set<MessageID>
        /// Per message type (by ID), what `validateMessageBody` asks of every message it validates —
        /// read from arrays rather than by hashing the ID into `regexMatchers` and `extensionConfigOneof`.
        let isRegexMatcher: [Bool]
        /// `extensionConfigOneof` by ID; -1 where absent.
        let extensionConfigOneofByID: [Int]

        private static let sharedCache = PerPoolCache<ContextTypes>()

        /// Resolved once per pool: the compiler makes a validator for each of its tens of thousands of
        /// resources, and resolving these names for each was 2% of a 10,000-service validate.
        static func shared(for pool: DescriptorPool) -> ContextTypes {
            sharedCache.value(for: pool) { ContextTypes(pool: pool) }
        }

        private init(pool: DescriptorPool) {
            regexMatchers = Set(["envoy.type.matcher.v3.RegexMatcher", "xds.type.matcher.v3.RegexMatcher"].compactMap(pool.messageID(named:)))
            listener = pool.messageID(named: TypeNames.listener)
            cluster = pool.messageID(named: TypeNames.cluster)
            var lists: [MessageID: ExtensionContext.Side] = [:]
            if let id = pool.messageID(named: TypeNames.httpConnectionManager) { lists[id] = .downstream }
            if let id = pool.messageID(named: TypeNames.router) { lists[id] = .upstream }
            if let id = pool.messageID(named: "envoy.extensions.upstreams.http.v3.HttpProtocolOptions") { lists[id] = .upstream }
            httpFilterLists = lists
            httpFilterListFields = Set(lists.keys.flatMap { id in pool.message(id).fields.filter { $0.name == "http_filters" || $0.name == "upstream_http_filters" }.map(ObjectIdentifier.init) })
            extensionConfigOneof = Self.extensionReferences(pool)
            let matchers = regexMatchers, oneofs = extensionConfigOneof
            isRegexMatcher = (0..<pool.messages.count).map { matchers.contains(MessageID($0)) }
            extensionConfigOneofByID = (0..<pool.messages.count).map { oneofs[MessageID($0)] ?? -1 }
            pointFields = ExtensionRegistry.pointFields(pool)
            loadBalancingPolicy = pool.messageID(named: "envoy.config.cluster.v3.LoadBalancingPolicy")
            cidrRange = pool.messageID(named: "envoy.config.core.v3.CidrRange")
        }

        /// Computed once per pool, as part of the pool's shared ContextTypes.
        static func extensionReferences(_ pool: DescriptorPool) -> [MessageID: Int] {
            let skipped = Set(["envoy.config.listener.v3.Filter", "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter"])
            var found: [MessageID: Int] = [:]
            for (id, message) in pool.messages.enumerated() where !skipped.contains(message.fullName) && message.fieldIndex(named: "name") != nil {
                if let oneof = message.oneofs.firstIndex(where: { $0.name == "config_type" }),
                   message.oneofs[oneof].memberFields.contains(where: { message.fields[$0].name == "typed_config" }) {
                    found[MessageID(id)] = oneof
                }
            }
            return found
        }
    }

    public init(pool: DescriptorPool, file: String?) {
        self.pool = pool
        self.file = file
        contextTypes = ContextTypes.shared(for: pool)
    }

    /// The kind of listener `listener` is, as Envoy decides it: the socket type comes from the
    /// address's protocol (UDP → datagram), and a datagram listener with quic_options is QUIC.
    static func listenerKind(_ listener: DynamicMessage, pool: DescriptorPool) -> ExtensionContext.ListenerKind {
        let view = MessageView(pool: pool, message: listener, trail: nil)
        if view.has("internal_listener") { return .tcp }
        guard view.child("address")?.child("socket_address")?.enumNumber("protocol") == 1 else { return .tcp }  // UDP
        return view.child("udp_listener_config")?.has("quic_options") == true ? .quic : .udp
    }

    public mutating func validate(_ message: DynamicMessage) {
        validateMessage(message)
    }

    mutating func report(_ rule: String, _ message: String, at location: SourceLocation?) {
        diagnostics.append(Diagnostic(.error, rule: rule, message: message, path: path.rendered, file: file, location: location))
    }

    mutating func validateMessage(_ message: DynamicMessage) {
        guard message.repeatID != 0 else { return validateMessageOnce(message) }
        // Copies of one text (see RepeatedCollections): checked once per type and context. The checks
        // below see only the message and `context`, so a copy that passed passes everywhere it is alike.
        let key = CheckedRepeat(id: message.repeatID, type: message.type, context: context)
        if checkedRepeats.contains(key) { return }
        let problemsBefore = diagnostics.count
        validateMessageOnce(message)
        if diagnostics.count == problemsBefore { checkedRepeats.insert(key) }
    }

    private struct CheckedRepeat: Hashable {
        let id: Int32
        let type: MessageID
        let context: ExtensionContext
    }

    private mutating func validateMessageOnce(_ message: DynamicMessage) {
        let descriptor = pool.message(message.type)
        if message.type == contextTypes.listener || message.type == contextTypes.cluster {
            let saved = context
            if message.type == contextTypes.listener {
                context.transportSocketSide = .downstream
                context.listenerKind = Self.listenerKind(message, pool: pool)
            } else {
                context.transportSocketSide = .upstream
            }
            defer { context = saved }
            validateMessageBody(message, descriptor: descriptor)
            return
        }
        validateMessageBody(message, descriptor: descriptor)
    }

    mutating func validateMessageBody(_ message: DynamicMessage, descriptor: MessageDescriptor) {
        if contextTypes.isRegexMatcher[Int(message.type)] { checkRegexMatcher(message, descriptor: descriptor) }
        if descriptor.wellKnownType != nil {
            if case .duration? = descriptor.wellKnownType { checkEnvoyDurationRange(message) }
            if case .any? = descriptor.wellKnownType { validateAnyPayload(message) }
            else if case .struct? = descriptor.wellKnownType {} // no rules inside Struct/Value
            return
        }
        if descriptor.isValidationDisabled || descriptor.isValidationIgnored { return }
        for oneofIndex in descriptor.requiredOneofs {
            let oneof = descriptor.oneofs[oneofIndex]
            if !oneof.memberFields.contains(where: { message.value(at: $0) != nil || message.unreadableFields.contains($0) }) {
                let names = oneof.memberFields.map { descriptor.fields[$0].name }
                report("pgv.oneof.required", "one of \(names.joined(separator: ", ")) must be set (oneof '\(oneof.name)' is required)", at: message.location)
            }
        }
        if message.type == contextTypes.loadBalancingPolicy { checkLoadBalancingPolicies(message) }
        if message.type == contextTypes.cidrRange { checkCidrRange(message) }
        if case let oneof = contextTypes.extensionConfigOneofByID[Int(message.type)], oneof >= 0,
           !descriptor.oneofs[oneof].memberFields.contains(where: { message.value(at: $0) != nil || message.unreadableFields.contains($0) }) {
            // Envoy 1.40 finds every extension by its config's type: a name alone finds nothing.
            let name = descriptor.fieldIndex(named: "name").flatMap { message.value(at: $0)?.value.stringValue } ?? ""
            report("envoy.extension-config-missing", "extension '\(name)' has no typed_config; Envoy finds extensions by their config type, so add typed_config with its \"@type\"", at: message.location)
        }
        // Which fields are set, for the first 64: a field without rules is visited only when set, and
        // most of a large message's fields are not, so they are skipped without a search of `fields`.
        var setLow: UInt64 = 0
        var anySetHigh = false
        for entry in message.fields {
            if entry.fieldIndex < 64 { setLow |= 1 << UInt64(entry.fieldIndex) } else { anySetHigh = true }
        }
        let fields = descriptor.fields  // one read of the class property, not one per field
        for checked in descriptor.checkedFields {
            let index = checked.index
            if !checked.hasRules, index < 64 ? setLow & (1 << UInt64(index)) == 0 : !anySetHigh { continue }
            let field = fields[index]
            let entry = message.value(at: index)
            // Members of a oneof (and proto3 `optional` fields) are checked only when set.
            if entry == nil && field.oneofIndex != nil { continue }
            if entry == nil && message.unreadableFields.contains(index) { continue }
            guard field.rules != nil || (entry != nil && (field.kind == .message)) else { continue }
            path.push(.field(field.name))
            validateField(field, entry: entry, owner: message)
            path.pop()
        }
    }

    /// The two halves of a long list of messages, validated on two threads; diagnostics joined in order.
    mutating func validateElementsInParallel(_ elements: [ListElement], field: FieldDescriptor) {
        let middle = elements.count / 2
        var fork = self
        fork.diagnostics = []
        fork.splitsLongLists = false
        let (first, second) = (fork, fork)
        let halves = ParallelPair.run({ () -> [Diagnostic] in
            var validator = first
            for i in 0..<middle { validator.validateElement(elements[i], index: i, field: field) }
            return validator.diagnostics
        }, { () -> [Diagnostic] in
            var validator = second
            for i in middle..<elements.count { validator.validateElement(elements[i], index: i, field: field) }
            return validator.diagnostics
        })
        diagnostics += halves.0 + halves.1
    }

    /// One message element of a repeated (non-map) field: its extension point's payload, then the message.
    mutating func validateElement(_ element: ListElement, index: Int, field: FieldDescriptor) {
        guard case .message(let child) = element.value else { return }
        path.push(.index(index))
        if let key = contextTypes.pointFields[ObjectIdentifier(field)], let point = ExtensionRegistry.point(key, in: context) {
            checkExtensionPoint(child, point: point, location: element.location)
        }
        var skip = false
        if case .repeated(let r)? = field.rules?.type, r.items?.skip == true { skip = true }
        if !skip { validateMessage(child) }
        path.pop()
    }

    mutating func validateAnyPayload(_ any: DynamicMessage) {
        guard let payload = any.value(at: 1)?.value.messageValue else { return }
        let typeURL = any.value(at: 0)?.value.stringValue ?? ""
        path.push(.anyType(typeURL))
        defer { path.pop() }
        if ExtensionRegistry.wrappers.contains(pool.message(payload.type).fullName) {
            validateTypedStruct(payload, location: any.location)
        } else {
            validateMessage(payload)
        }
    }

    /// A TypedStruct carries a message of another type as a Struct; Envoy converts it when it
    /// builds the extension, so its fields must be checked as that message's.
    mutating func validateTypedStruct(_ typedStruct: DynamicMessage, location: SourceLocation?) {
        let descriptor = pool.message(typedStruct.type)
        guard let urlIndex = descriptor.fieldIndex(named: "type_url"), let url = typedStruct.value(at: urlIndex)?.value.stringValue, !url.isEmpty else { return }
        guard let target = pool.messageID(typeURL: url) else {
            report("schema.unresolvable-any", "cannot resolve the TypedStruct's type_url \(url): no such message type in the Envoy API", at: location)
            return
        }
        var json = "{}"
        if let valueIndex = descriptor.fieldIndex(named: "value"), case .message(let structValue)? = typedStruct.value(at: valueIndex)?.value {
            json = TextWriter(pool: pool).jsonText(structValue)
        }
        let prefix = path.rendered
        let (message, readProblems) = ConfigDocument.read(text: json, file: file, syntax: .json, type: target, pool: pool)
        var nested = ConstraintValidator(pool: pool, file: file)
        nested.maxRegexProgramSize = maxRegexProgramSize
        nested.extensions = extensions
        nested.context = context
        if let message { nested.validate(message) }
        for var problem in readProblems + nested.diagnostics {
            // Positions inside the re-serialized Struct mean nothing to the user: point at the TypedStruct.
            problem.location = location
            problem.path = prefix + ".value" + (problem.path.isEmpty ? "" : "." + problem.path)
            problem.message += " (inside the TypedStruct for \(pool.message(target).fullName))"
            diagnostics.append(problem)
        }
    }

    mutating func validateField(_ field: FieldDescriptor, entry: FieldValue?, owner: DynamicMessage) {
        if field.isRepeated && field.kind == .message && contextTypes.httpFilterListFields.contains(ObjectIdentifier(field)),
           let side = contextTypes.httpFilterLists[owner.type] {
            let saved = context
            context.httpFilterSide = side
            defer { context = saved }
            validateFieldBody(field, entry: entry, owner: owner)
            return
        }
        validateFieldBody(field, entry: entry, owner: owner)
    }

    mutating func validateFieldBody(_ field: FieldDescriptor, entry: FieldValue?, owner: DynamicMessage) {
        let rules = field.rules
        let location = entry?.location ?? owner.location
        if field.isRepeated {
            let elements = entry?.value.listValue ?? []
            let isMap = field.messageType.map { pool.message($0).isMapEntry } ?? false
            if case .repeated(let r)? = rules?.type { checkRepeated(r, field: field, elements: elements, location: location) }
            if case .map(let m)? = rules?.type { checkMap(m, field: field, elements: elements, location: location) }
            var skipItems = false
            if case .repeated(let r)? = rules?.type, r.items?.skip == true { skipItems = true }
            if !isMap && !skipItems && field.kind == .message && elements.count >= TextReader.parallelListThreshold && splitsLongLists {
                validateElementsInParallel(elements, field: field)
                return
            }
            for (i, element) in elements.enumerated() {
                if isMap {
                    guard case .message(let entryMessage) = element.value else { continue }
                    let key = entryMessage.value(at: 0)?.value
                    path.push(.key(key.map(describeKey) ?? "?"))
                    if let value = entryMessage.value(at: 1), case .message(let v) = value.value {
                        // A route's per-filter configs are found by their type among the HTTP filters' configs.
                        var payloadChecked = false
                        if field.name == "typed_per_filter_config", let point = ExtensionRegistry.point(ExtensionRegistry.perFilterConfigPoint, in: context) {
                            payloadChecked = checkExtensionPoint(v, point: point, location: value.location)
                        }
                        if !payloadChecked { validateMessage(v) }
                    }
                    path.pop()
                } else {
                    validateElement(element, index: i, field: field)
                }
            }
            return
        }
        if field.kind == .message {
            if entry == nil {
                var requiredRule: String?
                if rules?.required == true { requiredRule = "pgv.message.required" }
                switch rules?.type {
                case .duration(let r)? where r.required: requiredRule = "pgv.duration.required"
                case .timestamp(let r)? where r.required: requiredRule = "pgv.timestamp.required"
                case .any(let r)? where r.required: requiredRule = "pgv.any.required"
                default: break
                }
                if let requiredRule { report(requiredRule, "value is required: set '\(field.name)'", at: location) }
                return
            }
            guard let entry, case .message(let child) = entry.value else { return }
            var payloadChecked = false
            if let key = contextTypes.pointFields[ObjectIdentifier(field)], let point = ExtensionRegistry.point(key, in: context) {
                payloadChecked = checkExtensionPoint(child, point: point, location: location)
            }
            if let type = rules?.type { checkMessageRules(type, field: field, child: child, location: location) }
            if rules?.skip != true && !payloadChecked { validateMessage(child) }
            return
        }
        if let type = rules?.type {
            checkScalar(type, value: entry?.value ?? defaultValue(of: field), field: field, isSet: entry != nil, location: location)
        }
    }

    /// Envoy reads every CIDR range through CidrRange::create (listener filter chains, RBAC, IP
    /// tagging, rate limit actions — where a malformed one even crashes Envoy 1.40).
    mutating func checkCidrRange(_ range: DynamicMessage) {
        let view = MessageView(pool: pool, message: range, trail: nil)
        let text = view.string("address_prefix") ?? ""
        var length = 0
        if case .uint(let n)? = view.wrapped("prefix_len") { length = Int(n) }
        if let ip = IPAddress(text), length <= ip.bytes.count * 8 { return }
        report("envoy.cidr-range", "'\(text)/\(length)' is not a valid CIDR range: address_prefix must be an IP address and prefix_len at most 32 (IPv4) or 128 (IPv6)", at: range.location)
    }

    // MARK: Extension points

    /// `load_balancing_policy.policies` is a preference list: Envoy takes the first policy it has a
    /// factory for and skips the others, so only a list with none it knows is refused.
    mutating func checkLoadBalancingPolicies(_ policy: DynamicMessage) {
        let view = MessageView(pool: pool, message: policy, trail: nil)
        let policies = view.children("policies")
        guard !policies.isEmpty, !extensions.isEmpty else { return }
        let types = policies.compactMap { $0.child("typed_extension_config")?.child("typed_config")?.string("type_url") }.map { String($0.split(separator: "/").last ?? "") }
        let known = extensions.typesByCategory["envoy.load_balancing_policies"] ?? []
        if !types.contains(where: { known.contains($0) || ExtensionRegistry.wrappers.contains($0) }) {
            report("schema.extension-category", "none of the load balancing policies (\(types.joined(separator: ", "))) is one the pinned Envoy has; Envoy uses the first policy it supports, so list at least one of its envoy.load_balancing_policies configs", at: policy.location)
        }
    }

    /// Returns true when the slot's payload must not be validated as itself: an empty Any of a
    /// per-route type is never unpacked; Envoy builds the factory's own config, empty, instead (checked here).
    @discardableResult
    mutating func checkExtensionPoint(_ value: DynamicMessage, point: ExtensionRegistry.ExtensionPoint, location: SourceLocation?) -> Bool {
        var any = value
        // A TypedExtensionConfig carries the Any in its typed_config.
        if pool.message(value.type).fullName == "envoy.config.core.v3.TypedExtensionConfig" {
            guard let index = pool.message(value.type).fieldIndex(named: "typed_config"), case .message(let inner)? = value.value(at: index)?.value else { return false }
            any = inner
        }
        guard case .any? = pool.message(any.type).wellKnownType else { return false }
        let url = any.value(at: 0)?.value.stringValue ?? ""
        if url.isEmpty && any.value(at: 1) == nil && !point.structSelectsByName {
            // Envoy finds the factory by this type and there is none: `{}` configures nothing.
            report("schema.extension-category", "typed_config is empty; a \(point.what) is found by its config type, so give it an \"@type\" (and the config)", at: location)
            return false
        }
        guard let type = pool.messageID(typeURL: url) else { return false }
        var payloadIsEmpty = true
        switch any.value(at: 1)?.value {
        case .message(let payload)?: payloadIsEmpty = payload.fields.isEmpty
        case .bytes(let bytes)?: payloadIsEmpty = bytes.isEmpty
        default: break
        }
        let typeName = pool.message(type).fullName
        if let problem = extensions.problem(typeName: typeName, at: point, payloadIsEmpty: payloadIsEmpty) {
            report("schema.extension-category", problem, at: location)
            return false
        }
        if payloadIsEmpty, let configType = extensions.substituteType(for: typeName, at: point),
           let configID = pool.messageID(named: configType) {
            validateMessage(DynamicMessage(type: configID, location: location))
            return any.type == value.type  // the slot's own Any: its empty payload is not validated as itself
        }
        return false
    }

    // MARK: Messages with type rules (Any, Duration, Timestamp, wrappers)

    mutating func checkMessageRules(_ rules: FieldRules.TypeRules, field: FieldDescriptor, child: DynamicMessage, location: SourceLocation?) {
        let descriptor = pool.message(child.type)
        switch (rules, descriptor.wellKnownType) {
        case (.any(let r), .any?):
            let url = child.value(at: 0)?.value.stringValue ?? ""
            if !r.in_.isEmpty && !r.in_.contains(url) { report("pgv.any.in", "type URL must be one of \(r.in_)", at: location) }
            if r.notIn.contains(url) { report("pgv.any.not_in", "type URL must not be \(url)", at: location) }
        case (.duration(let r), .duration?):
            let nanos = totalNanoseconds(child)
            checkNumeric(r.bounds, nanos, rule: "duration", render: { TimeText.formatDuration(seconds: Int64($0 / 1_000_000_000), nanos: Int32($0 % 1_000_000_000)) }, location: location)
        case (.timestamp(let r), .timestamp?):
            let nanos = totalNanoseconds(child)
            checkNumeric(r.bounds, nanos, rule: "timestamp", render: { TimeText.formatTimestamp(seconds: Int64($0 / 1_000_000_000), nanos: Int32($0 % 1_000_000_000)) }, location: location)
            let now = Int128(Date().timeIntervalSince1970 * 1e9)
            if r.ltNow && nanos >= now { report("pgv.timestamp.lt_now", "timestamp must be in the past", at: location) }
            if r.gtNow && nanos <= now { report("pgv.timestamp.gt_now", "timestamp must be in the future", at: location) }
            if let within = r.within, abs(nanos - now) > within { report("pgv.timestamp.within", "timestamp must be within \(within / 1_000_000_000)s of now", at: location) }
        case (_, .wrapper(let kind)?):
            // Rules on a wrapper field apply to the wrapped value, when the wrapper is set.
            let inner = child.value(at: 0)?.value ?? defaultValue(of: FieldDescriptor.scalar(kind))
            checkScalar(rules, value: inner, field: FieldDescriptor.scalar(kind), isSet: true, location: location)
        default:
            break
        }
    }

    /// Envoy refuses negative durations anywhere in its configuration, and durations too long to
    /// count in int64 nanoseconds.
    static let envoyMaximumDurationSeconds: Int64 = 9_223_372_035

    mutating func checkEnvoyDurationRange(_ duration: DynamicMessage) {
        var seconds: Int64 = 0
        var nanos: Int64 = 0
        if case .int(let v)? = duration.value(at: 0)?.value { seconds = v }
        if case .int(let v)? = duration.value(at: 1)?.value { nanos = v }
        if seconds < 0 || nanos < 0 {
            report("envoy.duration-negative", "durations must not be negative; got \(TimeText.formatDuration(seconds: seconds, nanos: Int32(truncatingIfNeeded: nanos)))", at: duration.location)
        } else if seconds > Self.envoyMaximumDurationSeconds {
            report("envoy.duration-range", "duration \(seconds)s is longer than Envoy can represent (at most \(Self.envoyMaximumDurationSeconds)s)", at: duration.location)
        }
    }

    /// A Duration or Timestamp (seconds, nanos) as nanoseconds.
    func totalNanoseconds(_ message: DynamicMessage) -> Int128 {
        var seconds: Int64 = 0
        var nanos: Int64 = 0
        if case .int(let v)? = message.value(at: 0)?.value { seconds = v }
        if case .int(let v)? = message.value(at: 1)?.value { nanos = v }
        return Int128(seconds) * 1_000_000_000 + Int128(nanos)
    }

    // MARK: Scalars

    mutating func checkScalar(_ rules: FieldRules.TypeRules, value: ProtoValue, field: FieldDescriptor, isSet: Bool, location: SourceLocation?) {
        switch (rules, value) {
        case (.integer(let r), _):
            let n: Int128
            switch value {
            case .int(let v): n = Int128(v)
            case .uint(let v): n = Int128(v)
            default: return
            }
            if r.ignoreEmpty && n == 0 { return }
            checkNumeric(r, n, rule: field.kind.ruleName, render: { "\($0)" }, location: location)
        case (.float(let r), _):
            let d: Double
            switch value {
            case .double(let v): d = v
            case .float(let v): d = Double(v)
            default: return
            }
            if r.ignoreEmpty && d == 0 { return }
            checkNumeric(r, d, rule: field.kind.ruleName, render: { "\($0)" }, location: location)
        case (.bool(let c), .bool(let b)):
            if let c, c != b { report("pgv.bool.const", "value must equal \(c)", at: location) }
        case (.string(let r), .string(let s)):
            checkString(r, s, location: location)
        case (.bytes(let r), .bytes(let b)):
            checkBytes(r, b, location: location)
        case (.enum(let r), .enumNumber(let n)):
            if let c = r.const_, c != n { report("pgv.enum.const", "value must equal \(enumName(field, c))", at: location) }
            if r.definedOnly, let enumType = field.enumType, pool.enumType(enumType).name(of: n) == nil {
                let names = pool.enumType(enumType).values.map(\.name)
                report("pgv.enum.defined_only", "\(n) is not a defined value of \(pool.enumType(enumType).fullName); use one of \(names.prefix(10).joined(separator: ", "))\(names.count > 10 ? ", …" : "")", at: location)
            }
            if !r.in_.isEmpty && !r.in_.contains(n) { report("pgv.enum.in", "value must be one of \(r.in_.map { enumName(field, $0) })", at: location) }
            if r.notIn.contains(n) { report("pgv.enum.not_in", "value must not be \(enumName(field, n))", at: location) }
        default:
            break
        }
    }

    func enumName(_ field: FieldDescriptor, _ n: Int32) -> String {
        field.enumType.flatMap { pool.enumType($0).name(of: n) } ?? "\(n)"
    }

    mutating func checkNumeric<T: Comparable>(_ r: NumericRules<T>, _ v: T, rule: String, render: (T) -> String, location: SourceLocation?) {
        if let c = r.const_, v != c { report("pgv.\(rule).const", "value must equal \(render(c))", at: location) }
        if !r.in_.isEmpty && !r.in_.contains(v) { report("pgv.\(rule).in", "value must be one of [\(r.in_.map(render).joined(separator: ", "))]", at: location) }
        if r.notIn.contains(v) { report("pgv.\(rule).not_in", "value must not be \(render(v))", at: location) }
        let lower: (T, Bool)? = r.gt.map { ($0, true) } ?? r.gte.map { ($0, false) }
        let upper: (T, Bool)? = r.lt.map { ($0, true) } ?? r.lte.map { ($0, false) }
        func above(_ b: (T, Bool)) -> Bool { b.1 ? v > b.0 : v >= b.0 }
        func below(_ b: (T, Bool)) -> Bool { b.1 ? v < b.0 : v <= b.0 }
        func words(_ b: (T, Bool), _ greater: Bool) -> String {
            (greater ? "greater than" : "less than") + (b.1 ? "" : " or equal to") + " \(render(b.0))"
        }
        // Rendered only for a report: most values pass, and rendering (a Duration's text, an
        // Int128 through `print`) cost more than every comparison here together.
        var got: String { "; got \(render(v))" }
        switch (lower, upper) {
        case let (l?, u?) where l.0 < u.0 || (l.0 == u.0 && !(l.1 || u.1)):
            if !(above(l) && below(u)) { report("pgv.\(rule).range", "value must be \(words(l, true)) and \(words(u, false))\(got)", at: location) }
        case let (l?, u?):
            // lower above upper: an exclusive range, the value must lie outside [upper, lower].
            if !(above(l) || below(u)) { report("pgv.\(rule).range", "value must be \(words(l, true)) or \(words(u, false))\(got)", at: location) }
        case let (l?, nil):
            if !above(l) { report("pgv.\(rule).\(l.1 ? "gt" : "gte")", "value must be \(words(l, true))\(got)", at: location) }
        case let (nil, u?):
            if !below(u) { report("pgv.\(rule).\(u.1 ? "lt" : "lte")", "value must be \(words(u, false))\(got)", at: location) }
        case (nil, nil):
            break
        }
    }

    mutating func checkString(_ r: StringRules, _ s: String, location: SourceLocation?) {
        if r.ignoreEmpty && s.isEmpty { return }
        // Built only for a message: most strings pass, and counting characters is a walk.
        var shown: String { s.count > 60 ? "\"\(s.prefix(60))…\"" : "\"\(s)\"" }
        let needsCharacters = r.len != nil || r.minLen != nil || r.maxLen != nil
        let characters = needsCharacters ? UInt64(s.unicodeScalars.count) : 0
        let bytes = UInt64(s.utf8.count)
        if let c = r.const_, s != c { report("pgv.string.const", "value must equal \"\(c)\"", at: location) }
        if let n = r.len, characters != n { report("pgv.string.len", "value length must be \(n) characters", at: location) }
        if let n = r.minLen, characters < n {
            report("pgv.string.min_len", n == 1 ? "value must not be empty" : "value length must be at least \(n) characters; got \(characters)", at: location)
        }
        if let n = r.maxLen, characters > n { report("pgv.string.max_len", "value length must be at most \(n) characters; got \(characters)", at: location) }
        if let n = r.lenBytes, bytes != n { report("pgv.string.len_bytes", "value must be \(n) bytes long", at: location) }
        if let n = r.minBytes, bytes < n { report("pgv.string.min_bytes", "value must be at least \(n) bytes long", at: location) }
        if let n = r.maxBytes, bytes > n { report("pgv.string.max_bytes", "value must be at most \(n) bytes long; got \(bytes)", at: location) }
        if let p = r.pattern, !p.containsMatch(in: s) { report("pgv.string.pattern", "value \(shown) does not match the pattern \(p.pattern)", at: location) }
        if let p = r.prefix, !s.hasPrefix(p) { report("pgv.string.prefix", "value must start with \"\(p)\"", at: location) }
        if let p = r.suffix, !s.hasSuffix(p) { report("pgv.string.suffix", "value must end with \"\(p)\"", at: location) }
        if let p = r.contains, !s.contains(p) { report("pgv.string.contains", "value must contain \"\(p)\"", at: location) }
        if let p = r.notContains, s.contains(p) { report("pgv.string.not_contains", "value must not contain \"\(p)\"", at: location) }
        if !r.in_.isEmpty && !r.in_.contains(s) { report("pgv.string.in", "value must be one of \(r.in_)", at: location) }
        if r.notIn.contains(s) { report("pgv.string.not_in", "value must not be \(shown)", at: location) }
        if let wk = r.wellKnown, !WellKnownFormats.matches(wk, s, strict: r.strict) {
            report("pgv.string.well_known", "value \(shown) must be \(WellKnownFormats.describe(wk, strict: r.strict))", at: location)
        }
    }

    mutating func checkBytes(_ r: BytesRules, _ b: [UInt8], location: SourceLocation?) {
        if r.ignoreEmpty && b.isEmpty { return }
        let n = UInt64(b.count)
        if let c = r.const_, b != c { report("pgv.bytes.const", "value must equal the configured constant", at: location) }
        if let l = r.len, n != l { report("pgv.bytes.len", "value must be \(l) bytes long", at: location) }
        if let l = r.minLen, n < l { report("pgv.bytes.min_len", "value must be at least \(l) bytes long", at: location) }
        if let l = r.maxLen, n > l { report("pgv.bytes.max_len", "value must be at most \(l) bytes long; got \(n)", at: location) }
        if let p = r.prefix, !b.starts(with: p) { report("pgv.bytes.prefix", "value must start with the configured prefix", at: location) }
        if let p = r.suffix, !b.reversed().starts(with: p.reversed()) { report("pgv.bytes.suffix", "value must end with the configured suffix", at: location) }
        if let p = r.contains, !p.isEmpty, !(0...max(0, b.count - p.count)).contains(where: { b.count >= p.count && Array(b[$0..<$0 + p.count]) == p }) {
            report("pgv.bytes.contains", "value must contain the configured bytes", at: location)
        }
        if !r.in_.isEmpty && !r.in_.contains(b) { report("pgv.bytes.in", "value must be one of the allowed values", at: location) }
        if r.notIn.contains(b) { report("pgv.bytes.not_in", "value is not allowed", at: location) }
        if let p = r.pattern, let s = String(validating: b, as: UTF8.self), !p.containsMatch(in: s) { report("pgv.bytes.pattern", "value does not match the pattern \(p.pattern)", at: location) }
        switch r.wellKnown {
        case .ip? where !(b.count == 4 || b.count == 16): report("pgv.bytes.ip", "value must be 4 or 16 bytes (an IP address)", at: location)
        case .ipv4? where b.count != 4: report("pgv.bytes.ipv4", "value must be 4 bytes (an IPv4 address)", at: location)
        case .ipv6? where b.count != 16: report("pgv.bytes.ipv6", "value must be 16 bytes (an IPv6 address)", at: location)
        default: break
        }
    }

    // MARK: Repeated and maps

    mutating func checkRepeated(_ r: RepeatedRules, field: FieldDescriptor, elements: [ListElement], location: SourceLocation?) {
        if r.ignoreEmpty && elements.isEmpty { return }
        let count = UInt64(elements.count)
        if let n = r.minItems, count < n {
            report("pgv.repeated.min_items", "must contain at least \(n) item\(n == 1 ? "" : "s"); got \(count)", at: location)
        }
        if let n = r.maxItems, count > n { report("pgv.repeated.max_items", "must contain at most \(n) item\(n == 1 ? "" : "s"); got \(count)", at: location) }
        if r.unique {
            var seen = Set<String>()
            for (i, element) in elements.enumerated() {
                let key = uniquenessKey(element.value)
                if !seen.insert(key).inserted {
                    path.push(.index(i))
                    report("pgv.repeated.unique", "items must be unique; \(key) appears more than once", at: element.location ?? location)
                    path.pop()
                }
            }
        }
        if let items = r.items, let type = items.type, field.kind != .message || isWellKnownWithRules(field) {
            for (i, element) in elements.enumerated() {
                path.push(.index(i))
                if field.kind == .message, case .message(let child) = element.value {
                    checkMessageRules(type, field: field, child: child, location: element.location ?? location)
                } else {
                    checkScalar(type, value: element.value, field: field, isSet: true, location: element.location ?? location)
                }
                path.pop()
            }
        }
    }

    func isWellKnownWithRules(_ field: FieldDescriptor) -> Bool {
        field.messageType.map { pool.message($0).wellKnownType != nil } ?? false
    }

    mutating func checkMap(_ r: MapRules, field: FieldDescriptor, elements: [ListElement], location: SourceLocation?) {
        if r.ignoreEmpty && elements.isEmpty { return }
        let count = UInt64(elements.count)
        if let n = r.minPairs, count < n { report("pgv.map.min_pairs", "map must have at least \(n) entr\(n == 1 ? "y" : "ies"); got \(count)", at: location) }
        if let n = r.maxPairs, count > n { report("pgv.map.max_pairs", "map must have at most \(n) entr\(n == 1 ? "y" : "ies"); got \(count)", at: location) }
        guard let entryType = field.messageType else { return }
        let entry = pool.message(entryType)
        for element in elements {
            guard case .message(let pair) = element.value else { continue }
            let key = pair.value(at: 0)?.value ?? defaultValue(of: entry.fields[0])
            path.push(.key(describeKey(key)))
            if let keys = r.keys?.type { checkScalar(keys, value: key, field: entry.fields[0], isSet: true, location: element.location ?? location) }
            if let values = r.values?.type {
                let value = pair.value(at: 1)?.value ?? defaultValue(of: entry.fields[1])
                if case .message(let child) = value {
                    checkMessageRules(values, field: entry.fields[1], child: child, location: element.location ?? location)
                } else {
                    checkScalar(values, value: value, field: entry.fields[1], isSet: true, location: element.location ?? location)
                }
            }
            path.pop()
        }
    }

    func describeKey(_ key: ProtoValue) -> String {
        switch key {
        case .string(let s): return s
        case .int(let v): return "\(v)"
        case .uint(let v): return "\(v)"
        case .bool(let b): return "\(b)"
        default: return "?"
        }
    }

    func uniquenessKey(_ value: ProtoValue) -> String {
        switch value {
        case .string(let s): return "\"\(s)\""
        case .bytes(let b): return Base64.encode(b)
        case .message(let m): return "message " + Base64.encode(m.serialized(pool: pool))
        default: return describeKey(value) == "?" ? "\(value)" : describeKey(value)
        }
    }

    // MARK: Regexes

    mutating func checkRegexMatcher(_ message: DynamicMessage, descriptor: MessageDescriptor) {
        guard let regexIndex = descriptor.fieldIndex(named: "regex"), let entry = message.value(at: regexIndex),
              case .string(let regex) = entry.value else { return }
        path.push(.field("regex"))
        defer { path.pop() }
        switch CompiledRegex.compile(regex) {
        case .failure(let error):
            report("regex.syntax", "invalid RE2 regex \"\(regex)\": \(error.message) (Envoy compiles safe_regex with RE2: no lookaround or backreferences)", at: entry.location)
        case .success(let compiled):
            var limit = maxRegexProgramSize
            if let engineIndex = descriptor.fieldIndex(named: "google_re2"), case .message(let engine)? = message.value(at: engineIndex)?.value,
               case .message(let maxSize)? = engine.value(named: "max_program_size", in: pool), case .uint(let v)? = maxSize.value(at: 0)?.value {
                limit = Int(v)
            }
            if compiled.programSize > limit {
                report("regex.program-size", "regex \"\(regex)\" compiles to an RE2 program of size \(compiled.programSize), over Envoy's maximum of \(limit); simplify it", at: entry.location)
            }
        }
    }
}

extension FieldKind {
    /// The kind's name in protoc-gen-validate rule ids (`pgv.uint32.gt`): the case name, spelled out
    /// rather than `"\(self)"`, which reflects on the enum for every checked number.
    var ruleName: String {
        switch self {
        case .double: return "double"
        case .float: return "float"
        case .int64: return "int64"
        case .uint64: return "uint64"
        case .int32: return "int32"
        case .fixed64: return "fixed64"
        case .fixed32: return "fixed32"
        case .bool: return "bool"
        case .string: return "string"
        case .group: return "group"
        case .message: return "message"
        case .bytes: return "bytes"
        case .uint32: return "uint32"
        case .enum: return "enum"
        case .sfixed32: return "sfixed32"
        case .sfixed64: return "sfixed64"
        case .sint32: return "sint32"
        case .sint64: return "sint64"
        }
    }
}

extension FieldDescriptor {
    /// A stand-in descriptor for the `value` of a wrapper type.
    static func scalar(_ kind: FieldKind) -> FieldDescriptor {
        scalarStandIns[kind.rawValue]
    }

    private static let scalarStandIns: [FieldDescriptor] = (0...18).map { raw in
        FieldDescriptor(name: "value", jsonName: "value", number: 1, kind: FieldKind(rawValue: raw) ?? .bytes, isRepeated: false, isPacked: false, hasPresence: false,
                        oneofIndex: nil, messageType: nil, enumType: nil, rules: nil, isDeprecated: false, isDisallowedByDefault: false, isSensitive: false)
    }
}

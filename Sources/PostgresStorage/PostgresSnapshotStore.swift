// The snapshot store in a PostgreSQL database: the directory store's content-addressed objects and
// manifests (PortableStoreFormat) in tables, so version ids, sharing between versions and every
// read are the same; what PostgreSQL adds is that many machines publish to and follow one store.
//
// Tables (schema version 1; `meshctl_schema` says which version wrote them):
//   meshctl_schema   (id = 1, version, written_by)
//   meshctl_objects  (hash PK, size, body bytea)                   resource bodies, shards, indexes
//   meshctl_versions (version PK, created_at, metadata, manifest, group_count, resource_count)
//   meshctl_live     (id = 1, version → meshctl_versions, generation)   the live pointer; the foreign key
//                    means it can never name a missing version, and gc cannot delete the live one
//   meshctl_history  (seq, kind, version, event JSON)              publish / rollback / gc, oldest first
// Schema version 2 adds (schemaV2Additions; a version-1 store is migrated in one transaction on first use):
//   meshctl_replicas     (replica_id PK, addresses, started_at, heartbeat_at, serving_version, maintenance_leader)
//   meshctl_proxy_status (replica_id, group_name, node_id PK; nacked, record JSON, updated_at)   fleet status
//                        (PostgresFleetStatus.swift says how it is written and expired)
//   and for the progressive rollout (PostgresRolloutStore.swift says how several replicas use them):
//   meshctl_rollout_state    (id = 1, revision, state JSON, written_by, term)   the progressive rollout's state
//   meshctl_rollout_requests (seq, request JSON)                    operators' requests, each taken once
//   meshctl_rollout_leader   (id = 1, holder, term, expires_at)     the lease: which replica drives rollouts
//   meshctl_rollout_replicas (replica, revision, report JSON, heartbeat_at)   each replica's proxies, for the leader
//
// Publish is one transaction: objects the database lacks, the version row, then the live pointer moved by
// compare-and-set on the generation read at the start (UPDATE … WHERE generation = $seen), the history
// line, and NOTIFY meshctl_live with the version — delivered to followers only if the transaction commits.
// A publisher whose compare-and-set finds the pointer moved (another publisher committed first) rolls back
// and tries again on top: a publish is the whole desired configuration, not a delta, so publishing it after
// the other one is exactly what serializing the two would have done, and both appear in the history.
// Writers hold a shared advisory lock, gc the exclusive one: objects a publish found present cannot be
// deleted under it.
import Foundation
import NIOCore
import PostgresNIO
import SnapshotStorage

public struct PostgresSnapshotStore: SnapshotStoring {
    public let url: PostgresStoreURL
    let session: PostgresSession
    let createIfMissing: Bool

    /// The schema this meshctl writes and reads.
    public static let schemaVersion = 2
    /// The advisory lock key writers share and gc takes alone ("meshctl" in ASCII).
    static let writersLock: Int64 = 0x6D65_7368_6374_6C01
    static let channel = "meshctl_live"
    /// Attempts a publish or rollback makes when other publishers keep winning the compare-and-set.
    static let maxAttempts = 8

    public init(url: PostgresStoreURL, createIfMissing: Bool = false) throws(SnapshotStoreError) {
        self.url = url
        self.session = try PostgresSession(url: url)
        self.createIfMissing = createIfMissing
    }

    public var location: String { url.redactedDescription }

    /// How often a follower re-reads the live pointer when no notification arrives.
    public var followPollMilliseconds: Int { url.pollIntervalMilliseconds }

    // MARK: Schema

    enum SchemaState { case absent, current }

    /// Checks the schema; with `create`, creates it (or refuses a database that holds other tables).
    @discardableResult
    func checkSchema(_ c: PostgresConnection, create: Bool, force: Bool = false) throws(SnapshotStoreError) -> SchemaState {
        let found = try c.run("SELECT to_regclass('meshctl_schema') IS NOT NULL AS present", location: location)
        let present = (try? found.first?.decode(Bool.self)) ?? false
        if present {
            let rows = try c.run("SELECT version, written_by FROM meshctl_schema WHERE id = 1", location: location)
            guard let row = rows.first, let (version, writer) = try? row.decode((Int, String).self) else {
                throw .notAStore(path: location, reason: "meshctl_schema has no row: the schema was damaged")
            }
            if version > Self.schemaVersion {
                throw .unsupportedFormat(path: location, found: "schema \(version), written by meshctl \(writer); this meshctl reads schema \(Self.schemaVersion)")
            }
            if version < Self.schemaVersion { try migrate(c, from: version) }
            return .current
        }
        guard create else { return .absent }
        if !force {
            let others = try c.run("""
                SELECT count(*)::int FROM pg_catalog.pg_tables
                WHERE schemaname = current_schema() AND tablename NOT LIKE 'meshctl\\_%'
                """, location: location)
            let count = (try? others.first?.decode(Int.self)) ?? 0
            if count > 0 {
                throw .notAStore(path: location, reason: "the database holds \(count) other table(s) and no meshctl schema; give meshctl its own database, or run `meshctl snapshot init --store URL` to add its tables here")
            }
        }
        try transaction(c) { () throws(SnapshotStoreError) in
            // Two first publishers at once: the second waits here and then finds the schema made.
            _ = try c.run("SELECT pg_advisory_xact_lock(\(Self.writersLock + 1))", location: location)
            // A catalog query, not to_regclass: that one may answer from this backend's cache, which an advisory
            // lock does not refresh, and miss the table the other creator just committed.
            let again = try c.run("""
                SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                               WHERE c.relname = 'meshctl_schema' AND n.nspname = current_schema())
                """, location: location)
            if (try? again.first?.decode(Bool.self)) == true { return }
            for statement in Self.schemaV1 + Self.schemaV2Additions { _ = try c.run(PostgresQuery(unsafeSQL: statement), location: location) }
            let writer = "meshctl"
            _ = try c.run("INSERT INTO meshctl_schema (id, version, written_by) VALUES (1, \(Self.schemaVersion), \(writer))", location: location)
        }
        return .current
    }

    /// Steps from older schema versions, in one transaction: a store of schema 1 gets the version-2 tables. Two
    /// replicas opening an old store at once serialize on the creation lock; the second finds it migrated.
    func migrate(_ c: PostgresConnection, from version: Int) throws(SnapshotStoreError) {
        guard version == 1 else {
            throw .unsupportedFormat(path: location, found: "schema \(version), which this meshctl cannot migrate")
        }
        try transaction(c) { () throws(SnapshotStoreError) in
            _ = try c.run("SELECT pg_advisory_xact_lock(\(Self.writersLock + 1))", location: location)
            let rows = try c.run("SELECT version FROM meshctl_schema WHERE id = 1", location: location)
            guard let found = try? rows.first?.decode(Int.self), found < Self.schemaVersion else { return }
            for statement in Self.schemaV2Additions { _ = try c.run(PostgresQuery(unsafeSQL: statement), location: location) }
            _ = try c.run("UPDATE meshctl_schema SET version = \(Self.schemaVersion), written_by = 'meshctl' WHERE id = 1", location: location)
        }
    }

    public static let schemaV1 = [
        "CREATE TABLE meshctl_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL, written_by text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE meshctl_objects (hash text PRIMARY KEY, size int NOT NULL, body bytea NOT NULL)",
        """
        CREATE TABLE meshctl_versions (version text PRIMARY KEY, created_at timestamptz NOT NULL, metadata text NOT NULL,
            manifest bytea NOT NULL, group_count int NOT NULL, resource_count int NOT NULL, stored_at timestamptz NOT NULL DEFAULT clock_timestamp())
        """,
        "CREATE TABLE meshctl_live (id int PRIMARY KEY CHECK (id = 1), version text REFERENCES meshctl_versions (version), generation bigint NOT NULL)",
        "INSERT INTO meshctl_live (id, version, generation) VALUES (1, NULL, 0)",
        "CREATE TABLE meshctl_history (seq bigserial PRIMARY KEY, kind text NOT NULL, version text NOT NULL, event text NOT NULL)",
    ]

    /// What schema version 2 adds to version 1 (a fresh store runs both lists; `migrate` runs this one).
    static let schemaV2Additions = [
        // Fleet status (PostgresFleetStatus): one heartbeat row per running replica, one row per proxy it serves.
        """
        CREATE TABLE meshctl_replicas (replica_id text PRIMARY KEY, xds_address text NOT NULL, admin_address text,
            started_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL, serving_version text,
            maintenance_leader boolean NOT NULL DEFAULT false)
        """,
        """
        CREATE TABLE meshctl_proxy_status (replica_id text NOT NULL, group_name text NOT NULL, node_id text NOT NULL,
            nacked boolean NOT NULL, record jsonb NOT NULL, updated_at timestamptz NOT NULL,
            PRIMARY KEY (replica_id, group_name, node_id))
        """,
        "CREATE INDEX meshctl_proxy_status_node ON meshctl_proxy_status (group_name, node_id)",
        // The progressive rollout (PostgresRolloutStore.swift): its state, written only by the lease holder of `term`.
        """
        CREATE TABLE meshctl_rollout_state (id int PRIMARY KEY CHECK (id = 1), revision bigint NOT NULL, state text NOT NULL,
            written_by text NOT NULL, term bigint NOT NULL, saved_at timestamptz NOT NULL DEFAULT clock_timestamp())
        """,
        "CREATE TABLE meshctl_rollout_requests (seq bigserial PRIMARY KEY, request text NOT NULL, submitted_at timestamptz NOT NULL DEFAULT clock_timestamp())",
        "CREATE TABLE meshctl_rollout_leader (id int PRIMARY KEY CHECK (id = 1), holder text NOT NULL, term bigint NOT NULL, expires_at timestamptz NOT NULL)",
        """
        CREATE TABLE meshctl_rollout_replicas (replica text PRIMARY KEY, revision bigint NOT NULL, report text NOT NULL,
            heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp())
        """,
    ]

    /// Creates the schema (also in a database that holds other tables) and checks it.
    public func initialize() throws(SnapshotStoreError) {
        try session.withConnection { c throws(SnapshotStoreError) in _ = try checkSchema(c, create: true, force: true) }
    }

    /// Runs `body` in a transaction; rolls back on any error.
    func transaction<T>(_ c: PostgresConnection, _ body: () throws(SnapshotStoreError) -> T) throws(SnapshotStoreError) -> T {
        _ = try c.run("BEGIN", location: location)
        do {
            let value = try body()
            _ = try c.run("COMMIT", location: location)
            return value
        } catch {
            _ = try? c.run("ROLLBACK", location: location)
            throw error
        }
    }

    /// A read: the schema must be there (or the store is empty when it is absent and `emptyIfAbsent`). With
    /// `checkOncePerConnection` (the fleet writer's once-a-second statement) the schema is checked on a connection's
    /// first use only, so each call is one round trip.
    func read<T>(emptyValue: T?, checkOncePerConnection: Bool = false,
                 _ body: (PostgresConnection) throws(SnapshotStoreError) -> T) throws(SnapshotStoreError) -> T {
        try session.withConnection { c throws(SnapshotStoreError) in
            if !checkOncePerConnection || session.schemaCheckedConnection != ObjectIdentifier(c) {
                if try checkSchema(c, create: false) == .absent {
                    if let emptyValue { return emptyValue }
                    throw .notAStore(path: location, reason: "the database has no meshctl schema; publish once (`meshctl compile --out URL`) or run `meshctl snapshot init --store URL`")
                }
                session.schemaCheckedConnection = ObjectIdentifier(c)
            }
            return try body(c)
        }
    }

    // MARK: Pointer and versions

    public func currentVersion() throws(SnapshotStoreError) -> String? {
        try read(emptyValue: Optional<String>.none) { c throws(SnapshotStoreError) in try livePointer(c).version }
    }

    func livePointer(_ c: PostgresConnection) throws(SnapshotStoreError) -> (version: String?, generation: Int64) {
        let rows = try c.run("SELECT version, generation FROM meshctl_live WHERE id = 1", location: location)
        guard let row = rows.first, let (version, generation) = try? row.decode((String?, Int64).self) else {
            throw .currentPointerCorrupt(path: location + " meshctl_live", detail: "the live row is missing")
        }
        return (version, generation)
    }

    public func current() throws(SnapshotStoreError) -> Snapshot? {
        try read(emptyValue: Optional<Snapshot>.none) { c throws(SnapshotStoreError) in
            guard let version = try livePointer(c).version else { return nil }
            return try loadResolved(c, version, check: .sizes)
        }
    }

    public func load(version reference: String, check: LoadCheck) throws(SnapshotStoreError) -> Snapshot {
        try read(emptyValue: nil) { c throws(SnapshotStoreError) in
            try loadResolved(c, try resolve(c, reference), check: check)
        }
    }

    public func resolve(_ reference: String) throws(SnapshotStoreError) -> String {
        try read(emptyValue: nil) { c throws(SnapshotStoreError) in try resolve(c, reference) }
    }

    func resolve(_ c: PostgresConnection, _ reference: String) throws(SnapshotStoreError) -> String {
        if reference == "current" {
            guard let version = try livePointer(c).version else { throw .noCurrentVersion }
            return version
        }
        let prefix = reference.lowercased()
        guard !prefix.isEmpty, prefix.count <= 64, prefix.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw .versionNotFound(reference: reference)
        }
        let pattern = prefix + "%"
        let rows = try c.run("SELECT version FROM meshctl_versions WHERE version LIKE \(pattern) ORDER BY version LIMIT 6", location: location)
        let matches = rows.compactMap { try? $0.decode(String.self) }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 { throw .ambiguousVersion(prefix: reference, matches: matches) }
        let tombstones = try c.run("SELECT event FROM meshctl_history WHERE kind = 'gc' AND version LIKE \(pattern) ORDER BY seq DESC LIMIT 1", location: location)
        if let text = try? tombstones.first?.decode(String.self), let event = PortableStoreFormat.decodeJSON(HistoryEvent.self, text) {
            throw .versionGarbageCollected(version: event.version, removedAt: event.time, sourceRevision: event.sourceRevision)
        }
        throw .versionNotFound(reference: reference)
    }

    func manifest(_ c: PostgresConnection, _ version: String) throws(SnapshotStoreError) -> [UInt8]? {
        let rows = try c.run("SELECT manifest FROM meshctl_versions WHERE version = \(version)", location: location)
        guard let row = rows.first else { return nil }
        guard let buffer = try? row.decode(ByteBuffer.self) else { throw .manifestCorrupt(version: version, detail: "unreadable manifest column") }
        return Array(buffer.readableBytesView)
    }

    func loadResolved(_ c: PostgresConnection, _ version: String, check: LoadCheck) throws(SnapshotStoreError) -> Snapshot {
        guard let manifest = try manifest(c, version) else { throw .versionNotFound(reference: version) }
        return try PortableStoreFormat.load(manifest: manifest, version: version, check: check) { hashes throws(SnapshotStoreError) in
            try fetchObjects(c, hashes)
        }
    }

    /// Objects by hash, in batches (a 10,000-service mesh asks for ~40,000 bodies).
    func fetchObjects(_ c: PostgresConnection, _ hashes: [String]) throws(SnapshotStoreError) -> [String: [UInt8]] {
        var found: [String: [UInt8]] = [:]
        found.reserveCapacity(hashes.count)
        var start = 0
        while start < hashes.count {
            let batch = Array(hashes[start..<min(hashes.count, start + 5000)])
            start += batch.count
            let rows = try c.run("SELECT hash, body FROM meshctl_objects WHERE hash = ANY(\(batch))", location: location)
            for row in rows {
                guard let (hash, body) = try? row.decode((String, ByteBuffer).self) else { continue }
                found[hash] = Array(body.readableBytesView)
            }
        }
        return found
    }

    public func list() throws(SnapshotStoreError) -> [VersionSummary] {
        try read(emptyValue: []) { c throws(SnapshotStoreError) in try list(c) }
    }

    func list(_ c: PostgresConnection) throws(SnapshotStoreError) -> [VersionSummary] {
        let current = try livePointer(c).version
        let rows = try c.run("SELECT version, metadata, group_count, resource_count FROM meshctl_versions", location: location)
        var summaries: [VersionSummary] = []
        for row in rows {
            guard let (version, metadataText, groups, resources) = try? row.decode((String, String, Int, Int).self),
                  let metadata = PortableStoreFormat.decodeJSON(SnapshotMetadata.self, metadataText) else { continue }
            summaries.append(VersionSummary(metadata: metadata, groupCount: groups, resourceCount: resources, isCurrent: version == current))
        }
        return summaries.sorted {
            $0.metadata.createdAt != $1.metadata.createdAt ? $0.metadata.createdAt > $1.metadata.createdAt : $0.metadata.version < $1.metadata.version
        }
    }

    public func history() throws(SnapshotStoreError) -> [HistoryEvent] {
        try read(emptyValue: []) { c throws(SnapshotStoreError) in
            let rows = try c.run("SELECT event FROM meshctl_history ORDER BY seq", location: location)
            return rows.compactMap { row in (try? row.decode(String.self)).flatMap { PortableStoreFormat.decodeJSON(HistoryEvent.self, $0) } }
        }
    }

    func appendHistory(_ c: PostgresConnection, _ event: HistoryEvent) throws(SnapshotStoreError) -> Int {
        let text = PortableStoreFormat.encodeJSON(event)
        _ = try c.run("INSERT INTO meshctl_history (kind, version, event) VALUES (\(event.kind.rawValue), \(event.version), \(text))", location: location)
        return text.utf8.count
    }

    // MARK: Publishing

    public func publish(_ snapshot: Snapshot) throws(SnapshotStoreError) -> PublishOutcome {
        // The common no-op (CI compiling unchanged input) answers from one query, before encoding every shard.
        if PortableStoreFormat.versionIsComputed(snapshot),
           let live = try? read(emptyValue: Optional<String>.none, { c throws(SnapshotStoreError) in try livePointer(c).version }),
           live == snapshot.metadata.version {
            return .unchanged(version: live)
        }
        let encoded = try PortableStoreFormat.encode(snapshot)
        return try session.withConnection { c throws(SnapshotStoreError) in
            if try checkSchema(c, create: createIfMissing) == .absent {
                throw .notAStore(path: location, reason: "the database has no meshctl schema; run `meshctl snapshot init --store URL` (or publish with `meshctl compile --out URL`)")
            }
            for _ in 1...Self.maxAttempts {
                if let outcome = try publishAttempt(c, encoded) { return outcome }
            }
            throw .publishConflict(location: location, attempts: Self.maxAttempts)
        }
    }

    /// One try; nil when another publisher moved the pointer first (rolled back, nothing of ours is left).
    func publishAttempt(_ c: PostgresConnection, _ encoded: PortableSnapshot) throws(SnapshotStoreError) -> PublishOutcome? {
        let version = encoded.metadata.version
        return try transaction(c) { () throws(SnapshotStoreError) -> PublishOutcome? in
            _ = try c.run("SELECT pg_advisory_xact_lock_shared(\(Self.writersLock))", location: location)
            let seen = try livePointer(c)
            let existing = try c.run("SELECT created_at FROM meshctl_versions WHERE version = \(version)", location: location)
            let existingCreatedAt = try? existing.first?.decode(Date.self)
            if seen.version == version, existingCreatedAt != nil { return .unchanged(version: version) }
            var bytes = try insertObjects(c, encoded.objects)
            if existingCreatedAt == nil {
                let metadata = PortableStoreFormat.encodeJSON(encoded.metadata)
                let manifest = ByteBuffer(bytes: encoded.manifest)
                _ = try c.run("""
                    INSERT INTO meshctl_versions (version, created_at, metadata, manifest, group_count, resource_count)
                    VALUES (\(version), \(encoded.metadata.createdAt), \(metadata), \(manifest), \(encoded.groupCount), \(encoded.resourceCount))
                    """, location: location)
                bytes += encoded.manifest.count + metadata.utf8.count
            }
            guard try movePointer(c, to: version, seen: seen.generation) else { return nil }
            let reason = existingCreatedAt.map { "content identical to version stored at \(PortableStoreFormat.timestampText($0))" } ?? encoded.metadata.message
            bytes += try appendHistory(c, HistoryEvent(kind: .publish, time: Date(), version: version, previous: seen.version,
                                                       author: encoded.metadata.author, reason: reason, sourceRevision: encoded.metadata.sourceRevision))
            return .published(version: version, bytesWritten: bytes)
        }
    }

    /// Compare-and-set of the live pointer, with the notification in the same transaction.
    func movePointer(_ c: PostgresConnection, to version: String, seen generation: Int64) throws(SnapshotStoreError) -> Bool {
        let moved = try c.run("""
            UPDATE meshctl_live SET version = \(version), generation = generation + 1 WHERE id = 1 AND generation = \(generation)
            """, location: location)
        guard moved.metadata.rows == 1 else { return false }
        _ = try c.run("SELECT pg_notify(\(Self.channel), \(version))", location: location)
        return true
    }

    /// Inserts the objects the database does not have (in hash order, so two publishers never deadlock).
    func insertObjects(_ c: PostgresConnection, _ objects: [PortableObject]) throws(SnapshotStoreError) -> Int {
        guard !objects.isEmpty else { return 0 }
        var present = Set<String>()
        let hashes = objects.map(\.hash)
        var start = 0
        while start < hashes.count {
            let batch = Array(hashes[start..<min(hashes.count, start + 10_000)])
            start += batch.count
            let rows = try c.run("SELECT hash FROM meshctl_objects WHERE hash = ANY(\(batch))", location: location)
            for row in rows { if let h = try? row.decode(String.self) { present.insert(h) } }
        }
        var missing: [PortableObject] = []
        var seen = Set<String>()
        for object in objects where !present.contains(object.hash) && seen.insert(object.hash).inserted { missing.append(object) }
        missing.sort { $0.hash < $1.hash }
        var bytes = 0
        var index = 0
        while index < missing.count {
            var batchBytes = 0
            var end = index
            while end < missing.count && end - index < 2000 && batchBytes < 8 << 20 { batchBytes += missing[end].bytes.count; end += 1 }
            let batch = missing[index..<end]
            let batchHashes = batch.map(\.hash)
            let sizes = batch.map { Int32($0.bytes.count) }
            let bodies = batch.map { ByteBuffer(bytes: $0.bytes) }
            _ = try c.run("""
                INSERT INTO meshctl_objects (hash, size, body)
                SELECT * FROM unnest(\(batchHashes)::text[], \(sizes)::int[], \(bodies)::bytea[]) ON CONFLICT (hash) DO NOTHING
                """, location: location)
            bytes += batchBytes
            index = end
        }
        return bytes
    }

    // MARK: Rollback

    public func rollback(to reference: String, reason: String?, author: String?) throws(SnapshotStoreError) -> RollbackOutcome {
        try read(emptyValue: nil) { c throws(SnapshotStoreError) in
            let target = try resolve(c, reference)
            // Every object hash-checked before the pointer moves: a damaged target leaves the live version alone.
            let snapshot = try loadResolved(c, target, check: .hashes)
            for _ in 1...Self.maxAttempts {
                let outcome = try transaction(c) { () throws(SnapshotStoreError) -> RollbackOutcome? in
                    _ = try c.run("SELECT pg_advisory_xact_lock_shared(\(Self.writersLock))", location: location)
                    let seen = try livePointer(c)
                    if seen.version == target { return .alreadyCurrent(version: target) }
                    guard try manifest(c, target) != nil else { throw .versionNotFound(reference: reference) }
                    guard try movePointer(c, to: target, seen: seen.generation) else { return nil }
                    _ = try appendHistory(c, HistoryEvent(kind: .rollback, time: Date(), version: target, previous: seen.version,
                                                          author: author, reason: reason, sourceRevision: snapshot.metadata.sourceRevision))
                    return .rolledBack(from: seen.version, to: target)
                }
                if let outcome { return outcome }
            }
            throw .publishConflict(location: location, attempts: Self.maxAttempts)
        }
    }

    // MARK: Garbage collection

    public func gc(keep: Int) throws(SnapshotStoreError) -> GCReport {
        guard keep >= 0 else { throw .invalidSnapshot(reason: "gc --keep must be 0 or more") }
        return try read(emptyValue: GCReport()) { c throws(SnapshotStoreError) in
            try transaction(c) { () throws(SnapshotStoreError) -> GCReport in try collect(c, keep: keep) }
        }
    }

    /// gc inside the caller's transaction.
    func collect(_ c: PostgresConnection, keep: Int) throws(SnapshotStoreError) -> GCReport {
        // Alone: no publish may rely on an object being present while gc decides it is not needed.
        _ = try c.run("SELECT pg_advisory_xact_lock(\(Self.writersLock))", location: location)
        var report = GCReport()
        let current = try livePointer(c).version
        let summaries = try list(c)
        var kept = Set(summaries.prefix(keep).map(\.metadata.version))
        if let current { kept.insert(current) }
        for summary in summaries where !kept.contains(summary.metadata.version) {
            let version = summary.metadata.version
            _ = try appendHistory(c, HistoryEvent(kind: .gc, time: Date(), version: version, reason: "gc --keep \(keep)",
                                                  sourceRevision: summary.metadata.sourceRevision))
            _ = try c.run("DELETE FROM meshctl_versions WHERE version = \(version)", location: location)
            report.removedVersions.append(version)
        }
        report.keptVersions = summaries.map(\.metadata.version).filter { kept.contains($0) }
        let (removed, freed) = try removeUnreferencedObjects(c, versions: Array(kept))
        report.removedObjects = removed
        report.freedBytes = freed
        return report
    }

    /// Deletes every object none of `versions` references; returns (objects, bytes) removed.
    func removeUnreferencedObjects(_ c: PostgresConnection, versions: [String]) throws(SnapshotStoreError) -> (Int, Int) {
        var reachable = Set<String>()
        for version in versions {
            guard let manifest = try manifest(c, version) else { continue }
            reachable.formUnion(try PortableStoreFormat.referencedObjects(manifest: manifest, version: version) { hashes throws(SnapshotStoreError) in
                try fetchObjects(c, hashes)
            })
        }
        let keep = Array(reachable)
        let rows = try c.run("""
            WITH gone AS (DELETE FROM meshctl_objects WHERE NOT (hash = ANY(\(keep)::text[])) RETURNING size)
            SELECT count(*)::int, coalesce(sum(size), 0)::bigint FROM gone
            """, location: location)
        guard let (count, bytes) = try? rows.first?.decode((Int, Int64).self) else { return (0, 0) }
        return (count, Int(bytes))
    }

    // MARK: Verify

    public func verify() -> VerifyReport {
        var report = VerifyReport()
        do {
            try read(emptyValue: ()) { c throws(SnapshotStoreError) in try verify(c, &report) }
        } catch {
            report.problems.append(.store(error))
        }
        return report
    }

    func verify(_ c: PostgresConnection, _ report: inout VerifyReport) throws(SnapshotStoreError) {
        try transaction(c) { () throws(SnapshotStoreError) in
            _ = try c.run("SELECT pg_advisory_xact_lock(\(Self.writersLock))", location: location)
            let counted = try c.run("SELECT count(*)::int FROM meshctl_objects", location: location)
            report.objectsChecked = (try? counted.first?.decode(Int.self)) ?? 0
            // Hashes computed by the server: no body leaves the database for this check.
            let damaged = try c.run("""
                DELETE FROM meshctl_objects WHERE encode(sha256(body), 'hex') <> hash OR length(body) <> size RETURNING hash
                """, location: location)
            for row in damaged {
                if let hash = try? row.decode(String.self) {
                    report.debrisRemoved.append("object \(hash) (damaged: content does not match its hash; removed)")
                }
            }
            let current = try livePointer(c).version
            report.currentVersion = current
            let versions = try c.run("SELECT version FROM meshctl_versions ORDER BY version", location: location).compactMap { try? $0.decode(String.self) }
            for version in versions {
                report.versionsChecked += 1
                do throws(SnapshotStoreError) {
                    let snapshot = try loadResolved(c, version, check: .sizes)
                    let recomputed = Snapshot.contentVersion(snapshot.groups)
                    if recomputed != version { throw .manifestCorrupt(version: version, detail: "its content hashes to \(recomputed)") }
                } catch {
                    report.problems.append(.version(version, error))
                    if version == current { report.problems.append(.current(error)) }
                }
            }
            if report.problems.isEmpty {
                let (orphans, _) = try removeUnreferencedObjects(c, versions: versions)
                if orphans > 0 { report.debrisRemoved.append("\(orphans) object(s) no version references") }
            }
        }
    }

    /// The database's size on disk (tables, indexes, catalog), for the benchmark.
    public func databaseBytes() throws(SnapshotStoreError) -> Int {
        try session.withConnection { c throws(SnapshotStoreError) in
            let rows = try c.run("SELECT pg_database_size(current_database())::bigint", location: location)
            return Int((try? rows.first?.decode(Int64.self)) ?? 0)
        }
    }

    // MARK: Change signal

    public func makeChangeSignal() -> any StoreChangeSignal {
        PostgresChangeSignal(session: session)
    }
}

// MARK: Import (`meshctl snapshot copy`)

extension PostgresSnapshotStore: SnapshotImporting {
    public func importVersion(_ snapshot: Snapshot) throws(SnapshotStoreError) {
        let encoded = try PortableStoreFormat.encode(snapshot)
        try session.withConnection { c throws(SnapshotStoreError) in
            if try checkSchema(c, create: createIfMissing) == .absent {
                throw .notAStore(path: location, reason: "the database has no meshctl schema; run `meshctl snapshot init --store URL` first")
            }
            try transaction(c) { () throws(SnapshotStoreError) in
                _ = try c.run("SELECT pg_advisory_xact_lock_shared(\(Self.writersLock))", location: location)
                _ = try insertObjects(c, encoded.objects)
                let version = encoded.metadata.version
                let metadata = PortableStoreFormat.encodeJSON(encoded.metadata)
                let manifest = ByteBuffer(bytes: encoded.manifest)
                _ = try c.run("""
                    INSERT INTO meshctl_versions (version, created_at, metadata, manifest, group_count, resource_count)
                    VALUES (\(version), \(encoded.metadata.createdAt), \(metadata), \(manifest), \(encoded.groupCount), \(encoded.resourceCount))
                    ON CONFLICT (version) DO NOTHING
                    """, location: location)
            }
        }
    }

    public func importHistory(_ events: [HistoryEvent], live: String?) throws(SnapshotStoreError) {
        try read(emptyValue: nil) { c throws(SnapshotStoreError) in
            try transaction(c) { () throws(SnapshotStoreError) in
                _ = try c.run("SELECT pg_advisory_xact_lock(\(Self.writersLock))", location: location)
                let seen = try livePointer(c)
                let count = try c.run("SELECT count(*)::int FROM meshctl_history", location: location)
                guard seen.version == nil, ((try? count.first?.decode(Int.self)) ?? 0) == 0 else {
                    throw .notAStore(path: location, reason: "it already has a history; copy into a new, empty database")
                }
                for event in events { _ = try appendHistory(c, event) }
                if let live {
                    guard try manifest(c, live) != nil else { throw .versionNotFound(reference: live) }
                    _ = try movePointer(c, to: live, seen: seen.generation)
                }
            }
        }
    }
}

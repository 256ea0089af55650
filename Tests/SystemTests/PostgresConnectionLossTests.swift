// A replica's store calls must end when the database goes away under them, never wait forever: a query
// written to a connection that is closing can be dropped by the channel (its handlers are already gone), and
// a store call waiting on it would hang the snapshot watcher for good (seen once in CI: a replica that never
// noticed an outage and never followed a later publish).
import Foundation
import NIOCore
import XCTest
import MeshTestSupport
import SnapshotStorage
@testable import PostgresStorage

final class PostgresConnectionLossTests: XCTestCase {
    override class func tearDown() {
        SharedPostgres.shutdown()
        super.tearDown()
    }

    /// Many queries raced against the close of their connection: every one ends (an answer or `.unreachable`) promptly.
    func testAQueryOnAConnectionClosingUnderItEndsInsteadOfHanging() throws {
        let (_, url) = try SharedPostgres.database()
        let session = try PostgresSession(url: try PostgresStoreURL(url))
        for attempt in 0..<300 {
            let connection = try session.openConnection()
            let closing: EventLoopFuture<Void> = connection.close()
            // Vary the race: sometimes the close is on its way, sometimes done.
            if attempt % 3 == 0 { usleep(UInt32(attempt % 7) * 100) }
            let outcome = FirstResult<String>()
            Thread.detachNewThread {
                do {
                    _ = try connection.run("SELECT 1", location: "test")
                    outcome.offer(.success("answered"))
                } catch {
                    if case .unreachable(_, let detail) = error as? SnapshotStoreError { outcome.offer(.success(detail)) }
                    else { outcome.offer(.success("not .unreachable: \(error)")) }
                }
            }
            guard case .success(let ending)? = outcome.wait(seconds: 10) else {
                return XCTFail("attempt \(attempt): a query on a closing connection did not end within 10 s")
            }
            XCTAssertTrue(ending == "answered" || ending.contains("closed"), "attempt \(attempt): \(ending)")
            _ = try? closing.wait()
        }
    }
}

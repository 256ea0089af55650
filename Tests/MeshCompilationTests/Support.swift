// The compiler tests' support: the schema and the package root. The demo mesh copied into a
// temporary directory to mutate (MeshFixture) is in MeshTestSupport.
import EnvoySchema
import Foundation
import MeshTestSupport

enum TestSupport {
    static let pool: DescriptorPool = {
        do { return try DescriptorPool.envoy } catch { fatalError("embedded schema does not load: \(error)") }
    }()

    /// The package root.
    static var root: URL { TestPaths.root }
}

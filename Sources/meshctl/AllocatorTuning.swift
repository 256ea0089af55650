// glibc's per-thread allocation cache keeps 7 free chunks per size; compiling a large mesh
// builds and frees ~100,000 small trees, so most allocations then fall through to malloc's
// slow path (measured: ~12% of a 10,000-service compile). The cache size can only be set
// before a process starts, so compile and validate re-execute meshctl once with a larger one.
import Foundation

enum AllocatorTuning {
    static let marker = "MESHCTL_ALLOCATOR_TUNED"

    /// Re-executes this process with a larger glibc tcache, once; returns (untuned) if that fails.
    static func apply() {
        let environment = ProcessInfo.processInfo.environment
        guard environment[marker] == nil, environment["MESHCTL_NO_ALLOCATOR_TUNING"] == nil else { return }
        setenv(marker, "1", 1)
        let tunables = (environment["GLIBC_TUNABLES"].map { $0 + ":" } ?? "") + "glibc.malloc.tcache_count=1000"
        setenv("GLIBC_TUNABLES", tunables, 1)
        // Nothing has been printed yet: no buffered output can be lost.
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}

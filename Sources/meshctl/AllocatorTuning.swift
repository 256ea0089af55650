// glibc's per-thread allocation cache keeps 7 free chunks per size; compiling a large mesh
// builds and frees ~100,000 small trees, so most allocations then fall through to malloc's
// slow path (measured: ~12% of a 10,000-service compile; ~15% of `meshctl loadgen`'s CPU, whose
// 10,000 simulated proxies decode and drop every answer). The cache size can only be set before a
// process starts, so compile, validate and loadgen re-execute meshctl once with a larger one.
// (Not serve: a long-running server would keep up to 1,000 free chunks per size on every thread.)
//
// meshctl's work runs on a thread of its own (main.swift), so its allocations come from a
// thread arena, which glibc grows a few pages at a time, each growth an mprotect call: reading a
// 17 MB bootstrap into a few hundred MiB of trees made ~15% of the process's time kernel time.
// One-shot commands that build such trees pad each growth instead.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

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

    /// Grows the heap in 64 MiB steps (M_TOP_PAD) rather than page by page. Only for commands that
    /// run once and exit (validate, compile, schema encode): a server would keep the padding.
    static func padHeapGrowth() {
        #if canImport(Glibc)
        // mallopt is declared in <malloc.h>, which the Glibc module does not import; it is looked up instead.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let topPad: Int32 = -2  // M_TOP_PAD
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }  // RTLD_DEFAULT
        _ = unsafeBitCast(symbol, to: Mallopt.self)(topPad, 64 << 20)
        #endif
    }
}

// Owns the process-memory readings the transport exposes for capacity
// measurements (heap in use across malloc arenas, resident set size).
internal import CTransportShims
import Glibc

/// Process-wide memory readings, for measuring per-connection cost.
public enum ProcessMemory {
    /// Bytes currently allocated from the C heap, all malloc arenas included (mallinfo2).
    public static var heapBytesInUse: Int { Int(transport_heap_in_use()) }

    /// Resident set size in bytes (/proc/self/statm), or 0 when unreadable.
    public static var residentBytes: Int {
        guard let file = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
        let fields = String(nulTerminated: line).split(separator: " ")
        guard fields.count >= 2, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

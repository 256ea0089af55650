// The one Swift layer over OpenSSL pieces every OpenSSL user needs: turning the
// thread-local error queue into readable reasons, and reading PEM out of memory
// through a BIO. Transport, the development certificates and the schema engine's
// host-file checks go through it; each still owns the OpenSSL objects it works with.
internal import COpenSSL

/// OpenSSL's (thread-local) error queue as Swift values.
public enum OpenSSLErrorQueue {
    /// How much of each queued error to keep.
    public enum Detail: Sendable {
        /// The reason only ("certificate verify failed").
        case reason
        /// OpenSSL's full line ("error:0A000086:SSL routines::certificate verify failed").
        case full
    }

    /// Empties the queue, oldest error first.
    public static func drain(_ detail: Detail = .reason) -> [String] {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            switch detail {
            case .reason:
                if let reason = ERR_reason_error_string(code) {
                    reasons.append(String(cString: reason))
                } else {
                    reasons.append("OpenSSL error 0x\(String(code, radix: 16))")
                }
            case .full:
                var buffer = [CChar](repeating: 0, count: 256)
                ERR_error_string_n(code, &buffer, buffer.count)
                reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
        }
        return reasons
    }

    /// Discards whatever is queued (before an operation whose failure will be read from the queue).
    public static func clear() { ERR_clear_error() }
}

/// PEM (and other encodings) read from memory.
public enum MemoryBIO {
    /// Calls `body` with a read-only memory BIO over `bytes` (errors `body` queues are left for the caller).
    public static func reading<T>(_ bytes: [UInt8], _ body: (OpaquePointer) -> T?) -> T? {
        bytes.withUnsafeBytes { raw -> T? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return body(bio)
        }
    }
}

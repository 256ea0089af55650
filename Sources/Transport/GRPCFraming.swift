// Owns gRPC's wire conventions above HTTP/2: the 5-byte length-prefixed
// message framing (with its size limit), status codes, and the
// percent-encoding of grpc-message.
public import GRPCStatusCodes

/// How a status travels in HTTP/2: the `grpc-status`/`grpc-message` trailers, and gRPC's mapping of resets.
extension GRPCStatus {
    /// The status a client reports for a stream its peer reset with an HTTP/2 error code (gRPC's mapping).
    static func forReset(errorCode: HTTP2ErrorCode) -> GRPCStatus {
        switch errorCode {
        case .refusedStream: return GRPCStatus(.unavailable, "stream refused by server (RST_STREAM REFUSED_STREAM)")
        case .cancel: return GRPCStatus(.cancelled, "stream cancelled (RST_STREAM CANCEL)")
        case .enhanceYourCalm: return GRPCStatus(.resourceExhausted, "RST_STREAM ENHANCE_YOUR_CALM")
        case .inadequateSecurity: return GRPCStatus(.permissionDenied, "RST_STREAM INADEQUATE_SECURITY")
        default: return GRPCStatus(.internalError, "stream reset with HTTP/2 \(errorCode)")
        }
    }

    var trailers: [HeaderField] {
        var fields = [HeaderField("grpc-status", String(code.rawValue))]
        if !message.isEmpty { fields.append(HeaderField("grpc-message", GRPCStatus.percentEncode(message))) }
        return fields
    }

    /// grpc-message carries UTF-8 percent-encoded outside printable ASCII (and '%' itself).
    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte >= 0x20 && byte <= 0x7e && byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += byte < 0x10 ? "%0\(hex)" : "%\(hex)"
            }
        }
        return out
    }

    static func percentDecode(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads grpc-status / grpc-message from a trailer (or trailers-only header) block.
    static func fromTrailers(_ fields: [HeaderField]) -> GRPCStatus? {
        guard let raw = fields.first(where: { $0.name == "grpc-status" })?.value else { return nil }
        let code = Int(raw).flatMap(Code.init(rawValue:)) ?? .unknown
        let message = fields.first(where: { $0.name == "grpc-message" }).map { percentDecode($0.value) } ?? ""
        return GRPCStatus(code, message)
    }
}

/// gRPC message framing: a 1-byte compressed flag, a 4-byte big-endian length, then the message.
enum GRPCFraming {
    static func prefix(forLength length: Int) -> [UInt8] {
        [0, UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
         UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)]
    }
}

/// Reassembles length-prefixed gRPC messages from arbitrarily split DATA payloads, enforcing a size limit.
struct GRPCMessageDeframer {
    /// Why the inbound byte stream cannot be turned into messages.
    enum Failure: Error, Equatable {
        case messageTooLarge(length: Int, limit: Int)
        case compressedMessage

        var status: GRPCStatus {
            switch self {
            case .messageTooLarge(let length, let limit):
                return GRPCStatus(.resourceExhausted, "gRPC message of \(length) bytes exceeds the limit of \(limit) bytes")
            case .compressedMessage:
                return GRPCStatus(.unimplemented, "compressed gRPC messages are not supported (no grpc-encoding negotiated)")
            }
        }
    }

    let maxMessageBytes: Int
    private var prefix: [UInt8] = []
    private var expectedLength: Int?
    private var message: [UInt8] = []

    init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// True when bytes of an unfinished message are held (the stream ending now would truncate it).
    var hasPartialMessage: Bool { !prefix.isEmpty || expectedLength != nil }

    /// Consumes `bytes`, appending every completed message to `messages`.
    mutating func append(_ bytes: UnsafeRawBufferPointer, to messages: inout [[UInt8]]) throws(Failure) {
        var index = 0
        while index < bytes.count {
            if let length = expectedLength {
                let take = min(length - message.count, bytes.count - index)
                message.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<(index + take)]))
                index += take
                if message.count == length {
                    messages.append(message)
                    message = []
                    expectedLength = nil
                }
                continue
            }
            prefix.append(bytes[index])
            index += 1
            if prefix.count == 5 {
                if prefix[0] != 0 { throw .compressedMessage }
                let length = Int(prefix[1]) << 24 | Int(prefix[2]) << 16 | Int(prefix[3]) << 8 | Int(prefix[4])
                prefix = []
                if length > maxMessageBytes { throw .messageTooLarge(length: length, limit: maxMessageBytes) }
                if length == 0 {
                    messages.append([])
                } else {
                    expectedLength = length
                    // Reserve at most 64 KiB up front: a peer announcing a large message must actually send it.
                    message.reserveCapacity(min(length, 64 * 1024))
                }
            }
        }
    }
}

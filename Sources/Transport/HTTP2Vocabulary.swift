// The HTTP/2 protocol's words as Swift types — error codes, stream identifiers, settings — so that nghttp2's
// C constants stop at HTTP2Session.swift, the one file that owns an nghttp2 session.

/// An HTTP/2 error code (RFC 9113 §7), as RST_STREAM and GOAWAY frames carry it.
public struct HTTP2ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let noError = HTTP2ErrorCode(rawValue: 0x0)
    public static let protocolError = HTTP2ErrorCode(rawValue: 0x1)
    public static let internalError = HTTP2ErrorCode(rawValue: 0x2)
    public static let flowControlError = HTTP2ErrorCode(rawValue: 0x3)
    public static let settingsTimeout = HTTP2ErrorCode(rawValue: 0x4)
    public static let streamClosed = HTTP2ErrorCode(rawValue: 0x5)
    public static let frameSizeError = HTTP2ErrorCode(rawValue: 0x6)
    public static let refusedStream = HTTP2ErrorCode(rawValue: 0x7)
    public static let cancel = HTTP2ErrorCode(rawValue: 0x8)
    public static let compressionError = HTTP2ErrorCode(rawValue: 0x9)
    public static let connectError = HTTP2ErrorCode(rawValue: 0xa)
    public static let enhanceYourCalm = HTTP2ErrorCode(rawValue: 0xb)
    public static let inadequateSecurity = HTTP2ErrorCode(rawValue: 0xc)
    public static let http11Required = HTTP2ErrorCode(rawValue: 0xd)

    private static let names = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
                                "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
                                "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]

    public var description: String { rawValue < Self.names.count ? Self.names[Int(rawValue)] : "error code 0x\(String(rawValue, radix: 16))" }
}

/// A stream identifier: 31 bits, odd for streams the client opened, even for the server's (unused: no push).
public struct HTTP2StreamID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// Stream 0: the connection itself (SETTINGS, PING, GOAWAY).
    public static let connection = HTTP2StreamID(0)

    public var isClientInitiated: Bool { rawValue % 2 == 1 }

    public static func < (a: HTTP2StreamID, b: HTTP2StreamID) -> Bool { a.rawValue < b.rawValue }

    public var description: String { String(rawValue) }
}

/// A SETTINGS parameter this side announces (RFC 9113 §6.5.2).
enum HTTP2Setting: Equatable, Sendable {
    case enablePush(Bool)
    case maxConcurrentStreams(UInt32)
    case initialWindowSize(UInt32)
    case maxHeaderListSize(UInt32)
    /// The HPACK dynamic table the peer may use for the headers it sends us (RFC 7541 §4.2).
    case headerTableSize(UInt32)
}

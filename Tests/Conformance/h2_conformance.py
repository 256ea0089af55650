#!/usr/bin/env python3
"""HTTP/2 conformance cases for meshctl's gRPC server, written with an independent HTTP/2 implementation.

Frames are built with hyper-h2's framing and HPACK libraries (hyperframe, hpack) and written raw, so each case
sends exactly the frame sequence of the h2spec 2.6 test it is named after (RFC 9113 section numbers), plus the
gRPC-specific behaviour meshctl chose: how a request that is not gRPC is answered, a stream half-closed before its
first message, and a stream that never sends one. Each verdict follows h2spec's verifiers: a stream error is an
RST_STREAM or GOAWAY with one of the expected codes (or the connection closing); a connection error is a GOAWAY
with the code or the connection closing.

Usage: h2_conformance.py --port N [--host H] [--tls --cert C --key K --ca CA] [--case ID]... [--list]
Prints one JSON object per case: {"case", "description", "passed", "detail"}; exits 0 when all passed, 1 if not.
"""
import argparse
import json
import socket
import ssl
import struct
import sys
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, STREAM_CLOSED = 0x0, 0x1, 0x7, 0x5
ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR", 4: "SETTINGS_TIMEOUT",
               5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR",
               10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM", 12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}
ADS_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


class CaseFailed(Exception):
    pass


class Connection:
    """One client connection: raw frames out, parsed frames in, HPACK state kept for both directions."""

    def __init__(self, options):
        self.options = options
        raw = socket.create_connection((options.host, options.port), timeout=options.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if options.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(options.ca)
            context.load_cert_chain(options.cert, options.key)
            context.set_alpn_protocols(["h2"])
            context.check_hostname = False
            raw = context.wrap_socket(raw, server_hostname="localhost")
        self.sock = raw
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buffer = b""
        self.closed = False
        self.server_settings = {}
        self.events = []  # every frame received, for the failure detail

    # -- writing

    def send(self, data):
        self.sock.sendall(data)

    def write(self, *frames):
        self.send(b"".join(frame.serialize() for frame in frames))

    def block(self, headers):
        return self.encoder.encode(headers)

    def headers(self, stream_id, headers, end_stream=False, end_headers=True):
        frame = HeadersFrame(stream_id, data=self.block(headers) if isinstance(headers, list) else headers)
        if end_stream:
            frame.flags.add("END_STREAM")
        if end_headers:
            frame.flags.add("END_HEADERS")
        return frame

    def data(self, stream_id, payload, end_stream=False):
        frame = DataFrame(stream_id, data=payload)
        if end_stream:
            frame.flags.add("END_STREAM")
        return frame

    # -- reading

    def next_frame(self, deadline):
        """The next frame, or None when the deadline passed; sets `closed` when the peer closed."""
        while True:
            if len(self.buffer) >= 9:
                length = struct.unpack(">I", b"\0" + self.buffer[:3])[0]
                if len(self.buffer) >= 9 + length:
                    frame, _ = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                    frame.parse_body(memoryview(self.buffer[9:9 + length]))
                    self.buffer = self.buffer[9 + length:]
                    if isinstance(frame, (HeadersFrame, ContinuationFrame)):
                        frame.decoded = self.decoder.decode(frame.data) if "END_HEADERS" in frame.flags else []
                    self.events.append(describe(frame))
                    return frame
            if self.closed:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except (ConnectionResetError, ssl.SSLError, OSError):
                chunk = b""
            if not chunk:
                self.closed = True
                self.events.append("connection closed")
            self.buffer += chunk

    def handshake(self):
        self.send(PREFACE + SettingsFrame(0).serialize())
        deadline = time.monotonic() + self.options.timeout
        got_settings = got_ack = False
        while not (got_settings and got_ack):
            frame = self.next_frame(deadline)
            if frame is None:
                raise CaseFailed("no SETTINGS exchange: " + "; ".join(self.events))
            if isinstance(frame, SettingsFrame):
                if "ACK" in frame.flags:
                    got_ack = True
                else:
                    self.server_settings = dict(frame.settings)
                    # As a conforming peer does (RFC 7541 §4.2, RFC 9113 §6.5.2): header blocks encoded from here on
                    # fit the table size the server announced (meshctl announces 0), the first starting with the
                    # size update.
                    if SettingsFrame.HEADER_TABLE_SIZE in self.server_settings:
                        self.encoder.header_table_size = self.server_settings[SettingsFrame.HEADER_TABLE_SIZE]
                    ack = SettingsFrame(0)
                    ack.flags.add("ACK")
                    self.write(ack)
                    got_settings = True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def describe(frame):
    name = type(frame).__name__.replace("Frame", "").upper()
    flags = ",".join(sorted(frame.flags))
    text = f"{name}(stream={frame.stream_id}{', ' + flags if flags else ''}"
    if isinstance(frame, (RstStreamFrame, GoAwayFrame)):
        text += f", {ERROR_NAMES.get(frame.error_code, frame.error_code)}"
    if isinstance(frame, (HeadersFrame, ContinuationFrame)) and getattr(frame, "decoded", None):
        text += ", " + " ".join(f"{k}={v}" for k, v in frame.decoded)
    return text + ")"


# -- h2spec's verifiers

def expect_stream_error(conn, *codes):
    deadline = time.monotonic() + conn.options.timeout
    while True:
        frame = conn.next_frame(deadline)
        if frame is None:
            if conn.closed:
                return
            raise CaseFailed(f"expected RST_STREAM or GOAWAY with {names(codes)}; got: {'; '.join(conn.events) or 'nothing'}")
        if isinstance(frame, (RstStreamFrame, GoAwayFrame)) and frame.error_code in codes:
            return


def expect_connection_error(conn, *codes):
    deadline = time.monotonic() + conn.options.timeout
    while True:
        frame = conn.next_frame(deadline)
        if frame is None:
            if conn.closed:
                return
            raise CaseFailed(f"expected GOAWAY with {names(codes)} or the connection closed; got: {'; '.join(conn.events) or 'nothing'}")
        if isinstance(frame, GoAwayFrame) and frame.error_code in codes:
            return


def expect_stream_close(conn):
    deadline = time.monotonic() + conn.options.timeout
    while True:
        frame = conn.next_frame(deadline)
        if frame is None:
            raise CaseFailed(f"expected the stream to end; got: {'; '.join(conn.events) or 'nothing'}")
        if isinstance(frame, (DataFrame, HeadersFrame)) and "END_STREAM" in frame.flags:
            return
        if isinstance(frame, RstStreamFrame) and frame.error_code == NO_ERROR:
            return


def expect_ping_answered(conn):
    ping = PingFrame(0, opaque_data=b"meshctl!")
    conn.write(ping)
    deadline = time.monotonic() + conn.options.timeout
    while True:
        frame = conn.next_frame(deadline)
        if frame is None:
            raise CaseFailed(f"expected the connection to stay usable (PING answered); got: {'; '.join(conn.events)}")
        if isinstance(frame, PingFrame) and "ACK" in frame.flags:
            return


def response(conn, stream_id, seconds=None):
    """Collects one stream's response until it ends: (headers, body bytes, trailers)."""
    deadline = time.monotonic() + (seconds if seconds is not None else conn.options.timeout)
    headers, body, trailers = None, b"", None
    while True:
        frame = conn.next_frame(deadline)
        if frame is None:
            raise CaseFailed(f"stream {stream_id}: the response did not end; got: {'; '.join(conn.events) or 'nothing'}")
        if frame.stream_id != stream_id:
            continue
        if isinstance(frame, HeadersFrame):
            if headers is None:
                headers = dict(frame.decoded)
            else:
                trailers = dict(frame.decoded)
        elif isinstance(frame, DataFrame):
            body += frame.data
        elif isinstance(frame, RstStreamFrame):
            raise CaseFailed(f"stream {stream_id} reset: {describe(frame)}")
        if "END_STREAM" in frame.flags:
            return headers, body, trailers


def nothing_for(conn, stream_id, seconds):
    deadline = time.monotonic() + seconds
    while True:
        frame = conn.next_frame(deadline)
        if frame is None:
            return
        if frame.stream_id == stream_id:
            raise CaseFailed(f"the server answered stream {stream_id} before the request ended: {describe(frame)}")


def names(codes):
    return " or ".join(ERROR_NAMES[c] for c in codes)


def common(options, method="GET", path="/"):
    return [(":method", method), (":scheme", "https" if options.tls else "http"), (":path", path),
            (":authority", f"{options.host}:{options.port}")]


def grpc_request(options, path=ADS_PATH):
    return common(options, "POST", path) + [("content-type", "application/grpc"), ("te", "trailers")]


# -- the cases

CASES = []


def case(case_id, description, grpc_only=False):
    def register(function):
        CASES.append((case_id, description, grpc_only, function))
        return function
    return register


@case("5.1/1", "idle: DATA frame → connection error PROTOCOL_ERROR")
def idle_data(c):
    c.write(c.data(1, b"test", end_stream=True))
    expect_stream_error(c, PROTOCOL_ERROR, STREAM_CLOSED)


@case("5.1/2", "idle: RST_STREAM frame → connection error PROTOCOL_ERROR")
def idle_rst(c):
    c.write(RstStreamFrame(1, error_code=8))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("5.1/3", "idle: WINDOW_UPDATE frame → connection error PROTOCOL_ERROR")
def idle_window_update(c):
    c.write(WindowUpdateFrame(1, window_increment=100))
    expect_connection_error(c, PROTOCOL_ERROR)


@case("5.1/4", "idle: CONTINUATION frame → connection error PROTOCOL_ERROR")
def idle_continuation(c):
    frame = ContinuationFrame(1, data=c.block(common(c.options)))
    frame.flags.add("END_HEADERS")
    c.write(frame)
    expect_connection_error(c, PROTOCOL_ERROR)


@case("5.1/5", "half closed (remote): DATA frame → stream error STREAM_CLOSED")
def half_closed_data(c):
    c.write(c.headers(1, common(c.options), end_stream=True), c.data(1, b"test", end_stream=True))
    expect_stream_error(c, STREAM_CLOSED)


@case("5.1/6", "half closed (remote): HEADERS frame → stream error STREAM_CLOSED")
def half_closed_headers(c):
    c.write(c.headers(1, common(c.options), end_stream=True), c.headers(1, common(c.options), end_stream=True))
    expect_stream_error(c, STREAM_CLOSED)


@case("5.1/7", "half closed (remote): CONTINUATION frame → stream error STREAM_CLOSED or PROTOCOL_ERROR")
def half_closed_continuation(c):
    block = c.block(common(c.options))
    frame = ContinuationFrame(1, data=block)
    frame.flags.add("END_HEADERS")
    c.write(c.headers(1, block, end_stream=True), frame)
    expect_stream_error(c, STREAM_CLOSED, PROTOCOL_ERROR)


@case("5.1/8", "closed: DATA frame after sending RST_STREAM → stream error STREAM_CLOSED")
def closed_data_after_rst(c):
    c.write(c.headers(1, common(c.options)), RstStreamFrame(1, error_code=8), c.data(1, b"test", end_stream=True))
    expect_stream_error(c, STREAM_CLOSED)


@case("5.1/9", "closed: HEADERS frame after sending RST_STREAM → stream error STREAM_CLOSED")
def closed_headers_after_rst(c):
    c.write(c.headers(1, common(c.options)), RstStreamFrame(1, error_code=8), c.headers(1, common(c.options), end_stream=True))
    expect_stream_error(c, STREAM_CLOSED)


@case("5.1/10", "closed: CONTINUATION frame after sending RST_STREAM → stream error STREAM_CLOSED or PROTOCOL_ERROR")
def closed_continuation_after_rst(c):
    frame = ContinuationFrame(1, data=c.block([("x-dummy0", "x" * 100)]))
    frame.flags.add("END_HEADERS")
    c.write(c.headers(1, common(c.options)), RstStreamFrame(1, error_code=8), frame)
    expect_stream_error(c, STREAM_CLOSED, PROTOCOL_ERROR)


@case("5.1/11", "closed: DATA frame on a stream both sides ended → STREAM_CLOSED")
def closed_data(c):
    c.write(c.headers(1, common(c.options), end_stream=True))
    expect_stream_close(c)
    c.write(c.data(1, b"test", end_stream=True))
    expect_stream_error(c, STREAM_CLOSED)


@case("5.1/12", "closed: HEADERS frame on a stream both sides ended → STREAM_CLOSED")
def closed_headers(c):
    c.write(c.headers(1, common(c.options), end_stream=True))
    expect_stream_close(c)
    c.write(c.headers(1, common(c.options), end_stream=True))
    expect_stream_error(c, STREAM_CLOSED)


@case("5.1/13", "closed: CONTINUATION frame on a stream both sides ended → STREAM_CLOSED or PROTOCOL_ERROR")
def closed_continuation(c):
    c.write(c.headers(1, common(c.options), end_stream=True))
    expect_stream_close(c)
    frame = ContinuationFrame(1, data=c.block([("x-dummy0", "x" * 100)]))
    frame.flags.add("END_HEADERS")
    c.write(frame)
    expect_stream_error(c, STREAM_CLOSED, PROTOCOL_ERROR)


@case("5.1.1/2", "HEADERS with a lower stream id than one already used: libnghttp2 1.52 ignores it (so does nghttpd); the connection stays usable")
def lower_stream_id(c):
    c.write(c.headers(5, common(c.options), end_stream=True))
    expect_stream_close(c)
    c.write(c.headers(3, common(c.options), end_stream=True))
    expect_ping_answered(c)


@case("5.1.2/1", "HEADERS beyond SETTINGS_MAX_CONCURRENT_STREAMS → stream error PROTOCOL_ERROR or REFUSED_STREAM")
def concurrency(c):
    limit = c.server_settings.get(SettingsFrame.MAX_CONCURRENT_STREAMS)
    if limit is None:
        raise CaseFailed("the server does not advertise SETTINGS_MAX_CONCURRENT_STREAMS")
    c.write(SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0}))
    block = c.block(common(c.options))
    c.send(b"".join(c.headers(1 + 2 * i, block, end_stream=True).serialize() for i in range(limit + 1)))
    expect_stream_error(c, PROTOCOL_ERROR, REFUSED_STREAM)


@case("6.1/2", "DATA on a stream that is not open or half-closed (local) → stream error STREAM_CLOSED")
def data_not_open(c):
    c.write(c.headers(1, common(c.options, "POST"), end_stream=True), c.data(1, b"test", end_stream=True))
    expect_stream_error(c, STREAM_CLOSED)


@case("6.1/3", "DATA with an invalid pad length → connection error PROTOCOL_ERROR")
def data_invalid_padding(c):
    c.write(c.headers(1, common(c.options, "POST") + [("content-length", "4")]))
    c.send(b"\x00\x00\x05\x00\x09\x00\x00\x00\x01")
    c.send(b"\x06\x54\x65\x73\x74")
    expect_connection_error(c, PROTOCOL_ERROR)


@case("8.1.2.1/3", "a pseudo-header field in trailers → stream error PROTOCOL_ERROR")
def pseudo_header_in_trailers(c):
    c.write(c.headers(1, common(c.options, "POST")), c.data(1, b"test"), c.headers(1, [(":method", "POST")]))
    expect_stream_error(c, PROTOCOL_ERROR)


@case("8.1.2.6/1", "content-length differs from the DATA payload → stream error PROTOCOL_ERROR")
def content_length_one_frame(c):
    c.write(c.headers(1, common(c.options, "POST") + [("content-length", "1")]), c.data(1, b"test", end_stream=True))
    expect_stream_error(c, PROTOCOL_ERROR)


@case("8.1.2.6/2", "content-length differs from the sum of DATA payloads → stream error PROTOCOL_ERROR")
def content_length_two_frames(c):
    c.write(c.headers(1, common(c.options, "POST") + [("content-length", "1")]), c.data(1, b"test"),
            c.data(1, b"test", end_stream=True))
    expect_stream_error(c, PROTOCOL_ERROR)


# gRPC behaviour (meshctl only)

def check_refusal(headers, body, status, says):
    if headers is None or headers.get(":status") != status:
        raise CaseFailed(f"expected :status {status}, got {headers}")
    if "grpc-status" not in headers or not body.startswith(b"meshctl serves gRPC"):
        raise CaseFailed(f"expected grpc-status and an explanatory body, got {headers} {body!r}")
    if says not in body.decode():
        raise CaseFailed(f"the body does not say {says!r}: {body!r}")


@case("grpc/get", "GET on the gRPC port → 405 with grpc-status and a one-line body", grpc_only=True)
def grpc_get(c):
    c.write(c.headers(1, common(c.options), end_stream=True))
    headers, body, _ = response(c, 1)
    check_refusal(headers, body, "405", "POST")


@case("grpc/post-not-grpc-in-pieces", "POST text/plain sent in pieces → no answer before the body ends, then 415", grpc_only=True)
def grpc_post_pieces(c):
    c.write(c.headers(1, common(c.options, "POST") + [("content-type", "text/plain")]))
    nothing_for(c, 1, 0.3)
    c.write(c.data(1, b"hello"))
    nothing_for(c, 1, 0.3)
    c.write(c.data(1, b" world", end_stream=True))
    headers, body, _ = response(c, 1)
    check_refusal(headers, body, "415", "application/grpc")


@case("grpc/post-not-grpc-one-write", "the same request in one write → the same 415 answer", grpc_only=True)
def grpc_post_one_write(c):
    c.write(c.headers(1, common(c.options, "POST") + [("content-type", "text/plain")]), c.data(1, b"hello"),
            c.data(1, b" world", end_stream=True))
    headers, body, _ = response(c, 1)
    check_refusal(headers, body, "415", "application/grpc")


@case("grpc/half-closed-before-first-request", "ADS stream half-closed without a message → ends at once with INVALID_ARGUMENT", grpc_only=True)
def grpc_half_closed(c):
    started = time.monotonic()
    c.write(c.headers(1, grpc_request(c.options)), c.data(1, b"", end_stream=True))
    headers, _, trailers = response(c, 1, seconds=5)
    status = (trailers or headers or {}).get("grpc-status")
    if status != "3":
        raise CaseFailed(f"expected grpc-status 3 (INVALID_ARGUMENT), got headers {headers} trailers {trailers}")
    if time.monotonic() - started > 2:
        raise CaseFailed(f"the call ended only after {time.monotonic() - started:.1f} s")


@case("grpc/no-first-request", "ADS stream that sends nothing → ends with DEADLINE_EXCEEDED after the first-request timeout", grpc_only=True)
def grpc_no_first_request(c):
    c.write(c.headers(1, grpc_request(c.options)))
    headers, _, trailers = response(c, 1, seconds=c.options.first_request_timeout + 5)
    status = (trailers or headers or {}).get("grpc-status")
    if status != "4":
        raise CaseFailed(f"expected grpc-status 4 (DEADLINE_EXCEEDED), got headers {headers} trailers {trailers}")


@case("grpc/ads-byte-by-byte", "an ADS request whose HEADERS and DATA frames arrive one byte per packet (frame headers and message split anywhere) is served", grpc_only=True)
def grpc_byte_by_byte(c):
    from envoy.service.discovery.v3 import discovery_pb2
    request = discovery_pb2.DiscoveryRequest(type_url="type.googleapis.com/envoy.config.listener.v3.Listener")
    request.node.id = "conformance-1"
    request.node.cluster = c.options.node_cluster
    message = request.SerializeToString()
    frames = c.headers(1, grpc_request(c.options)).serialize() + c.data(1, b"\0" + struct.pack(">I", len(message)) + message).serialize()
    for i in range(len(frames)):
        c.send(frames[i:i + 1])
        time.sleep(0.001)
    deadline = time.monotonic() + c.options.timeout
    while True:
        frame = c.next_frame(deadline)
        if frame is None:
            raise CaseFailed(f"no DiscoveryResponse; got: {'; '.join(c.events) or 'nothing'}")
        if isinstance(frame, DataFrame) and frame.stream_id == 1 and len(frame.data) > 5:
            response = discovery_pb2.DiscoveryResponse.FromString(bytes(frame.data[5:]))
            if response.type_url != request.type_url or not response.nonce:
                raise CaseFailed(f"unexpected response: {response}")
            return
        if isinstance(frame, (RstStreamFrame, GoAwayFrame)) or (isinstance(frame, HeadersFrame) and "END_STREAM" in frame.flags):
            raise CaseFailed(f"the stream ended without a response: {'; '.join(c.events)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ca")
    parser.add_argument("--case", action="append", default=[])
    parser.add_argument("--http2-only", action="store_true", help="only the RFC 9113 cases (for a non-gRPC reference server)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an expected frame")
    parser.add_argument("--first-request-timeout", type=float, default=2.0)
    parser.add_argument("--node-cluster", default="frontend", help="a proxy group of the served snapshot (for grpc/ads-byte-by-byte)")
    parser.add_argument("--list", action="store_true")
    options = parser.parse_args()
    selected = [c for c in CASES if (not options.case or c[0] in options.case) and not (options.http2_only and c[2])]
    if options.list:
        for case_id, description, _, _ in selected:
            print(f"{case_id}\t{description}")
        return 0
    if options.port is None:
        parser.error("--port is required")
    failures = 0
    for case_id, description, _, function in selected:
        conn = None
        try:
            conn = Connection(options)
            conn.handshake()
            function(conn)
            result = {"case": case_id, "description": description, "passed": True, "detail": "; ".join(conn.events[-4:])}
        except CaseFailed as error:
            result = {"case": case_id, "description": description, "passed": False, "detail": str(error)}
        except (OSError, ssl.SSLError) as error:
            result = {"case": case_id, "description": description, "passed": False, "detail": f"{type(error).__name__}: {error}"}
        finally:
            if conn is not None:
                conn.close()
        failures += 0 if result["passed"] else 1
        print(json.dumps(result), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

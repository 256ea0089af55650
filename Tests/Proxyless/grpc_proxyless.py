"""A proxyless gRPC application and its server, with grpcio (PyPI) as the real xDS client.

  serve --port P (--cert C --key K --ca CA | --plaintext) --name NAME
      A gRPC server on 127.0.0.1:P standing in for a mesh service's sidecar: mutual TLS with the
      service's mesh certificate, client certificates required, answering grpc.health.v1.Health/Check
      with SERVING and NAME in the trailing metadata 'backend'. Prints 'listening' once it accepts,
      then one 'peer URI' line per call (the caller's SPIFFE identity as TLS saw it). Runs until
      terminated. With --plaintext it is the application behind a real Envoy sidecar instead
      (cleartext HTTP/2 on loopback, as the sidecar's local cluster speaks it).

  call --bootstrap FILE --target xds:///NAME [--deadline SECONDS] [--hold SECONDS] [--repeat]
      Dials the target through gRPC's xDS resolver (FILE as GRPC_XDS_BOOTSTRAP) with
      xDS channel credentials (the cluster's TLS comes from the control plane), calls Health/Check
      until it answers or the deadline passes, and prints one JSON line: {"ok": true, "status": ...}
      or {"ok": false, "code": ..., "details": ...}. Exit 0 when the call was answered. With
      --repeat it keeps calling (every 100 ms, one JSON line per call, with the answering backend)
      until the deadline, so configuration changes can be watched from one running client.

No generated protobuf code: the health messages are two bytes each way, written out below.
"""
import argparse
import json
import os
import sys
import time
from concurrent import futures

grpc = None  # imported in main(), after GRPC_XDS_BOOTSTRAP is set

CHECK = "/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}


def serve(args):
    def check(request, context):
        for key, values in context.auth_context().items():
            if key == "x509_subject_alternative_name":
                for value in values:
                    print("peer", value.decode(), flush=True)
        for key, value in context.invocation_metadata():
            if key == "x-forwarded-client-cert":  # set by an Envoy sidecar in front of this server
                print("xfcc", value, flush=True)
        context.set_trailing_metadata((("backend", args.name),))
        return SERVING

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    if args.plaintext:
        server.add_insecure_port("127.0.0.1:%d" % args.port)
    else:
        credentials = grpc.ssl_server_credentials(
            [(open(args.key, "rb").read(), open(args.cert, "rb").read())],
            root_certificates=open(args.ca, "rb").read(), require_client_auth=True)
        server.add_secure_port("127.0.0.1:%d" % args.port, credentials)
    server.start()
    print("listening", flush=True)
    server.wait_for_termination()


def call(args):
    credentials = grpc.xds_channel_credentials(fallback_credentials=grpc.local_channel_credentials())
    channel = grpc.secure_channel(args.target, credentials)
    method = channel.unary_unary(CHECK)
    deadline = time.monotonic() + args.deadline
    last = None
    answered = False
    while time.monotonic() < deadline:
        try:
            answer, rpc = method.with_call(b"", timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            status = "SERVING" if answer == SERVING else answer.hex()
            backend = dict(rpc.trailing_metadata() or ()).get("backend", "")
            print(json.dumps({"ok": True, "status": status, "backend": backend}), flush=True)
            answered = True
            if args.repeat:
                time.sleep(0.1)
                continue
            if args.hold > 0:
                time.sleep(args.hold)  # stay connected, so the control plane can be asked about this client
            channel.close()
            return 0
        except grpc.RpcError as error:
            last = {"ok": False, "code": error.code().name, "details": error.details()}
            if args.repeat:
                print(json.dumps(last), flush=True)
            time.sleep(0.2)
    if answered:
        channel.close()
        return 0
    print(json.dumps(last or {"ok": False, "code": "NONE", "details": "no attempt finished"}), flush=True)
    channel.close()
    return 1


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--cert")
    s.add_argument("--key")
    s.add_argument("--ca")
    s.add_argument("--plaintext", action="store_true")
    s.add_argument("--name", default="")
    c = commands.add_parser("call")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--target", required=True)
    c.add_argument("--deadline", type=float, default=20.0)
    c.add_argument("--hold", type=float, default=0.0)
    c.add_argument("--repeat", action="store_true")
    args = parser.parse_args()
    global grpc
    if args.command == "call":
        os.environ["GRPC_XDS_BOOTSTRAP"] = args.bootstrap
    import grpc as module
    grpc = module
    if args.command == "serve":
        if not args.plaintext and not (args.cert and args.key and args.ca):
            parser.error("serve needs --cert, --key and --ca (or --plaintext)")
        serve(args)
        return 0
    return call(args)


if __name__ == "__main__":
    sys.exit(main())

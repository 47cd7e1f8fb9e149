"""The gRPC upstream of the gRPC fidelity corpus, on raw bytes (no
generated code), for `tests/fidelity/grpc-envoy.yaml`.

Service `probe.Echo`:

- `Say` (unary) answers the request's bytes prefixed with `echo: `, with
  initial metadata `x-served-by: grpc-echo` (and `x-probe-echo` carrying
  the request's `x-probe`, when sent) and trailing metadata
  `x-trailer: done`.
- `Empty` (unary) answers an empty message.
- `Fail` (unary) fails with status 7 (`PERMISSION_DENIED`), message
  `not allowed here` and trailing metadata `x-reason: policy`.
- `Chat` (bidirectional) sends the same initial metadata, answers each
  message with `echo: ` and the message, and ends with status 0 and
  trailing metadata `x-trailer: done` once the client half-closes.

Usage: grpc_upstream.py PORT. Prints `ready` once it listens on
127.0.0.1:PORT.
"""

import sys
from concurrent import futures

import grpc

INITIAL = (("x-served-by", "grpc-echo"),)
TRAILING = (("x-trailer", "done"),)


def initial_metadata(context):
    sent = dict(context.invocation_metadata())
    extra = (("x-probe-echo", sent["x-probe"]),) if "x-probe" in sent else ()
    context.send_initial_metadata(INITIAL + extra)


def say(request, context):
    initial_metadata(context)
    context.set_trailing_metadata(TRAILING)
    return b"echo: " + request


def empty(request, context):
    return b""


def fail(request, context):
    context.set_trailing_metadata((("x-reason", "policy"),))
    context.abort(grpc.StatusCode.PERMISSION_DENIED, "not allowed here")


def chat(requests, context):
    initial_metadata(context)
    for request in requests:
        yield b"echo: " + request
    context.set_trailing_metadata(TRAILING)


class Echo(grpc.GenericRpcHandler):
    def service(self, details):
        if details.method == "/probe.Echo/Say":
            return grpc.unary_unary_rpc_method_handler(say)
        if details.method == "/probe.Echo/Empty":
            return grpc.unary_unary_rpc_method_handler(empty)
        if details.method == "/probe.Echo/Fail":
            return grpc.unary_unary_rpc_method_handler(fail)
        if details.method == "/probe.Echo/Chat":
            return grpc.stream_stream_rpc_method_handler(chat)
        return None


def main():
    port = int(sys.argv[1])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Echo(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()

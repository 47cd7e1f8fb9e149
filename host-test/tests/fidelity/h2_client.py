#!/usr/bin/env python3
"""Sends one request over HTTP/2 with prior knowledge (h2c), trailers
included, which curl cannot send; prints the response as `curl --include`
does.

Usage: h2_client.py PORT < request.json, the request being the corpus's
(`method`, `path`, `authority`, `headers`, `body`, `trailers`). Pseudo-
headers go in curl's order (`:method`, `:path`, `:scheme`, `:authority`);
a body without a `content-length` gets one, as curl gives it. Needs the
`h2` package (examples/setup.sh installs it).
"""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events


def pairs(value):
    """Headers as the corpus writes them: a map or a list of pairs."""
    if isinstance(value, dict):
        return sorted(value.items())
    return [tuple(pair) for pair in value or []]


def request_headers(request, body):
    headers = [
        (":method", request.get("method", "GET")),
        (":path", request.get("path", "/")),
        (":scheme", "http"),
        (":authority", request.get("authority", "example.com")),
    ]
    headers += [(name.lower(), value) for name, value in pairs(request.get("headers"))]
    if body and not any(name == "content-length" for name, _ in headers):
        headers.append(("content-length", str(len(body))))
    return headers


def main():
    port = int(sys.argv[1])
    request = json.load(sys.stdin)
    body = (request.get("body") or "").encode()
    trailers = [(name.lower(), value) for name, value in pairs(request.get("trailers"))]
    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    connection = h2.connection.H2Connection(config=config)
    connection.initiate_connection()
    stream = connection.get_next_available_stream_id()
    connection.send_headers(
        stream, request_headers(request, body), end_stream=not body and not trailers
    )
    if body:
        connection.send_data(stream, body, end_stream=not trailers)
    if trailers:
        connection.send_headers(stream, trailers, end_stream=True)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(connection.data_to_send())
    status, headers, data, ended = None, [], b"", False
    for _ in range(10_000):
        chunk = sock.recv(65_536)
        if not chunk:
            break
        for event in connection.receive_data(chunk):
            if isinstance(event, h2.events.ResponseReceived):
                for name, value in event.headers:
                    if name == ":status":
                        status = value
                    else:
                        headers.append((name, value))
            elif isinstance(event, h2.events.DataReceived):
                data += event.data
                connection.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                ended = True
        sock.sendall(connection.data_to_send())
        if ended:
            break
    sock.close()
    if status is None:
        sys.exit("h2_client: no response")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    sys.stdout.buffer.write(f"HTTP/2 {status} \r\n{head}\r\n".encode() + data)


if __name__ == "__main__":
    main()

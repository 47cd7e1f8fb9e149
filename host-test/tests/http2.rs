//! A client speaking HTTP/2 to Envoy, through the probe filter: the
//! pseudo-headers' order, the body's frames, trailers and
//! `request.protocol`, exactly. The fidelity corpus compares headers,
//! bodies and replies with Envoy; trailers it cannot (curl sends none).

use warden_host_test::{Engine, Plugin, Protocol, Request, testing};

fn plugin(config: serde_json::Value) -> Plugin {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    filter
        .plugin()
        .name("probe")
        .root_id("probe")
        .configuration(config.to_string())
        .start()
        .unwrap()
}

#[test]
fn pseudo_headers_come_in_the_clients_order_and_the_body_in_one_frame() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "headers", "map": "request_headers"},
            {"op": "property", "path": ["request", "protocol"], "as": "string"}
        ],
        "request_body": [{"op": "body", "buffer": "request"}]
    }));
    let request = Request::new("POST", "/submit")
        .body("hello")
        .protocol(Protocol::Http2);
    let exchange = plugin.send(request).unwrap();
    exchange
        .assert_status(200)
        .assert_upstream_header("content-length", Some("5"));
    assert_eq!(
        exchange.outcome.messages(),
        [
            "request_headers: end_of_stream = false",
            "request_headers: headers request_headers = :method=POST, :path=/submit, \
             :scheme=http, :authority=example.com, content-length=5, \
             x-forwarded-for=192.0.2.1, x-forwarded-proto=http, \
             x-envoy-external-address=127.0.0.1, \
             x-request-id=00000000-0000-4000-8000-000000000002",
            "request_headers: property request.protocol = HTTP/2",
            "request_body: size = 5 end_of_stream = true",
            "request_body: body request = hello",
            "response_headers: end_of_stream = true",
            "log: stream ends",
        ]
    );
}

#[test]
fn trailers_reach_the_filter_without_enabling_them() {
    let mut plugin = plugin(serde_json::json!({
        "request_trailers": [{"op": "headers", "map": "request_trailers"}]
    }));
    let request = Request::new("POST", "/")
        .body("data")
        .trailer("x-checksum", "abc")
        .protocol(Protocol::Http2);
    let exchange = plugin.send(request).unwrap();
    let forwarded = exchange.outcome.upstream.as_ref().unwrap();
    assert_eq!(forwarded.trailers.get("x-checksum"), Some("abc"));
    assert_eq!(
        exchange.outcome.messages(),
        [
            "request_headers: end_of_stream = false",
            "request_body: size = 4 end_of_stream = false",
            "request_trailers: count = 1",
            "request_trailers: headers request_trailers = x-checksum=abc",
            "response_headers: end_of_stream = true",
            "log: stream ends",
        ]
    );
}

#[test]
fn the_same_request_over_http1_is_framed_by_the_http1_codec() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "get_header", "map": "request_headers", "name": ":method"}
        ]
    }));
    let request = Request::new("POST", "/")
        .body("data")
        .trailer("x-checksum", "abc");
    let exchange = plugin.send(request).unwrap();
    assert_eq!(
        exchange.outcome.messages(),
        [
            "request_headers: end_of_stream = false",
            "request_headers: get_header request_headers :method = Ok(Some(\"POST\"))",
            "request_body: size = 4 end_of_stream = false",
            "request_body: size = 0 end_of_stream = true",
            "response_headers: end_of_stream = true",
            "log: stream ends",
        ]
    );
}

#[test]
fn the_protocol_reads_from_yaml() {
    let request: Request = serde_norway::from_str("{protocol: http2}").unwrap();
    assert_eq!(request.protocol, Protocol::Http2);
    let error = serde_norway::from_str::<Request>("{protocol: h3}").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("protocol: unknown variant `h3`"),
        "{error}"
    );
}

#[test]
fn trailers_without_a_body_go_upstream_chunked() {
    let mut plugin = plugin(serde_json::json!({}));
    let request = Request::new("POST", "/")
        .trailer("x-checksum", "abc")
        .protocol(Protocol::Http2);
    let exchange = plugin.send(request).unwrap();
    exchange
        .assert_upstream_header("transfer-encoding", Some("chunked"))
        .assert_upstream_header("content-length", None);
    let over_http1 = plugin.send(Request::new("POST", "/")).unwrap();
    over_http1
        .assert_upstream_header("transfer-encoding", None)
        .assert_upstream_header("content-length", Some("0"));
}

//! The main request's upstream failing or answering late, through the
//! probe filter: the router's reply, the callbacks the filter sees, the
//! response flags and the upstream properties, exactly. The fidelity
//! corpus compares the same cases with Envoy.

use warden_host_test::profile::{Profile, RouteTimeout};
use warden_host_test::{
    CalloutAnswer, Disposition, Engine, Plugin, Request, UpstreamFailure, UpstreamResponse, testing,
};

fn plugin(config: serde_json::Value) -> Plugin {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    let profile = Profile {
        route_timeouts: vec![RouteTimeout {
            prefix: "/short/".into(),
            timeout_ms: 500,
        }],
        ..Profile::envoy()
    };
    filter
        .plugin()
        .name("probe")
        .root_id("probe")
        .profile(profile)
        .configuration(config.to_string())
        .start()
        .unwrap()
}

/// What the probe logs at `on_log` for the failure cases.
fn failure_probe() -> serde_json::Value {
    serde_json::json!({
        "response_headers": [
            {"op": "headers", "map": "response_headers"},
            {"op": "property", "path": ["response", "flags"], "as": "int"}
        ],
        "log": [
            {"op": "property", "path": ["response", "code_details"], "as": "string"},
            {"op": "property", "path": ["response", "flags"], "as": "int"},
            {"op": "property", "path": ["response", "backend_latency"], "as": "status"},
            {"op": "property", "path": ["upstream", "local_address"], "as": "status"},
            {"op": "property", "path": ["upstream", "transport_failure_reason"], "as": "string"},
            {"op": "property", "path": ["request", "duration"], "as": "int"}
        ]
    })
}

#[test]
fn a_refused_connection_gets_the_routers_503_and_flag_uf() {
    let mut plugin = plugin(failure_probe());
    let request = Request::get("/").upstream(UpstreamResponse::failing(UpstreamFailure::Refused));
    let exchange = plugin.send(request).unwrap();
    let body = "upstream connect error or disconnect/reset before headers. \
                reset reason: remote connection failure";
    let details = "upstream_reset_before_response_started\
                   {remote_connection_failure|delayed_connect_error:_Connection_refused}";
    exchange
        .assert_status(503)
        .assert_body(body)
        .assert_details(details)
        .assert_header("content-type", Some("text/plain"))
        .assert_header("x-envoy-upstream-service-time", None)
        .assert_forwarded(false);
    assert_eq!(exchange.outcome.disposition, Disposition::UpstreamFailed);
    assert_eq!(
        exchange.outcome.messages(),
        [
            "request_headers: end_of_stream = true".to_owned(),
            "response_headers: end_of_stream = false".to_owned(),
            "response_headers: headers response_headers = :status=503, content-length=98, \
             content-type=text/plain"
                .to_owned(),
            "response_headers: property response.flags = 32".to_owned(),
            "response_body: size = 98 end_of_stream = true".to_owned(),
            "log: stream ends".to_owned(),
            format!("log: property response.code_details = {details}"),
            "log: property response.flags = 32".to_owned(),
            "log: property response.backend_latency = status 1, 0 bytes".to_owned(),
            "log: property upstream.local_address = status 1, 0 bytes".to_owned(),
            "log: property upstream.transport_failure_reason = \
             delayed connect error: Connection refused"
                .to_owned(),
            "log: property request.duration = 0".to_owned(),
        ]
    );
}

#[test]
fn a_reset_before_the_response_gets_the_routers_503_and_flag_uc() {
    let mut plugin = plugin(failure_probe());
    let request = Request::new("POST", "/")
        .body("hello")
        .upstream(UpstreamResponse::failing(UpstreamFailure::ResetBeforeResponse).after_ms(20));
    let exchange = plugin.send(request).unwrap();
    exchange
        .assert_status(503)
        .assert_body(
            "upstream connect error or disconnect/reset before headers. \
             reset reason: connection termination",
        )
        .assert_details("upstream_reset_before_response_started{connection_termination}")
        .assert_forwarded(true);
    let logs = exchange.outcome.messages();
    assert_eq!(
        logs[logs.len() - 6..],
        [
            "log: property response.code_details = \
             upstream_reset_before_response_started{connection_termination}",
            "log: property response.flags = 64",
            "log: property response.backend_latency = status 1, 0 bytes",
            "log: property upstream.local_address = status 0, 15 bytes",
            "log: property upstream.transport_failure_reason = None",
            "log: property request.duration = 20000000",
        ]
    );
}

#[test]
fn no_answer_times_out_after_the_routes_timeout_with_flag_ut() {
    let mut plugin = plugin(failure_probe());
    let request =
        Request::get("/short/x").upstream(UpstreamResponse::failing(UpstreamFailure::NoAnswer));
    let exchange = plugin.send(request).unwrap();
    exchange
        .assert_status(504)
        .assert_body("upstream request timeout")
        .assert_details("response_timeout")
        .assert_upstream_header("x-envoy-expected-rq-timeout-ms", Some("500"));
    assert_eq!(exchange.outcome.disposition, Disposition::UpstreamFailed);
    exchange.assert_logged("info", "log: property response.flags = 4");
    exchange.assert_logged("info", "log: property request.duration = 500000000");
}

#[test]
fn an_answer_later_than_the_route_timeout_is_a_timeout() {
    let mut plugin = plugin(failure_probe());
    let late = UpstreamResponse::default().after_ms(15_000);
    let exchange = plugin.send(Request::get("/").upstream(late)).unwrap();
    exchange
        .assert_status(504)
        .assert_details("response_timeout")
        .assert_upstream_header("x-envoy-expected-rq-timeout-ms", Some("15000"));
    exchange.assert_logged("info", "log: property request.duration = 15000000000");
}

#[test]
fn a_reset_after_the_response_started_keeps_what_was_sent() {
    let mut plugin = plugin(serde_json::json!({
        "response_headers": [
            {"op": "property", "path": ["response", "code_details"], "as": "string"}
        ],
        "response_body": [{"op": "body", "buffer": "response"}],
        "log": [
            {"op": "property", "path": ["response", "code"], "as": "int"},
            {"op": "property", "path": ["response", "code_details"], "as": "string"},
            {"op": "property", "path": ["response", "flags"], "as": "int"},
            {"op": "property", "path": ["response", "size"], "as": "int"}
        ]
    }));
    let partial = UpstreamResponse {
        headers: [("content-length", "10")].into_iter().collect(),
        body: Some("part".into()),
        failure: Some(UpstreamFailure::ResetAfterResponseStarted),
        ..UpstreamResponse::default()
    };
    let exchange = plugin.send(Request::get("/").upstream(partial)).unwrap();
    exchange
        .assert_status(200)
        .assert_body("part")
        .assert_header("content-length", Some("10"))
        .assert_details("upstream_reset_after_response_started{protocol_error}");
    assert_eq!(exchange.outcome.disposition, Disposition::UpstreamFailed);
    assert_eq!(
        exchange.outcome.messages(),
        [
            "request_headers: end_of_stream = true",
            "response_headers: end_of_stream = false",
            "response_headers: property response.code_details = via_upstream",
            "response_body: size = 4 end_of_stream = false",
            "response_body: body response = part",
            "log: stream ends",
            "log: property response.code = 200",
            "log: property response.code_details = \
             upstream_reset_after_response_started{protocol_error}",
            "log: property response.flags = 8388608",
            "log: property response.size = 4",
        ]
    );
}

#[test]
fn a_tick_due_while_the_upstream_answers_late_fires_first() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [{"op": "tick_period", "ms": 40}],
        "tick": [{"op": "log", "level": "info", "msg": "tick"}],
        "response_headers": [
            {"op": "property", "path": ["response", "flags"], "as": "int"}
        ],
        "log": [{"op": "property", "path": ["response", "backend_latency"], "as": "int"}]
    }));
    let late = UpstreamResponse::default().after_ms(100);
    let exchange = plugin.send(Request::get("/").upstream(late)).unwrap();
    exchange.assert_status(200).assert_details("via_upstream");
    assert_eq!(exchange.outcome.disposition, Disposition::Forwarded);
    assert_eq!(
        exchange.outcome.messages(),
        [
            "request_headers: end_of_stream = true",
            "request_headers: tick_period 40 = Ok(())",
            "tick",
            "tick",
            "response_headers: end_of_stream = true",
            "response_headers: property response.flags = 0",
            "log: stream ends",
            "log: property response.backend_latency = 0",
        ]
    );
}

#[test]
fn a_callout_answer_can_reply_before_a_late_upstream() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "callout", "cluster": "auth", "timeout_ms": 1000,
             "headers": [[":method", "GET"], [":path", "/"], [":authority", "auth"]]}
        ],
        "callout": [{"op": "reply", "status": 401, "body": "", "details": "late"}]
    }));
    let answer = CalloutAnswer::Respond {
        status: 200,
        headers: vec![],
        body: vec![],
        trailers: vec![],
    };
    plugin.upstream_after("auth", answer, 50);
    let late = UpstreamResponse::default().after_ms(200);
    let exchange = plugin.send(Request::get("/").upstream(late)).unwrap();
    exchange.assert_status(401).assert_details("late");
    assert_eq!(exchange.outcome.disposition, Disposition::LocalReply);
}

#[test]
fn begin_returns_while_the_upstream_is_late_and_finish_completes() {
    let mut plugin = plugin(serde_json::json!({}));
    let late = UpstreamResponse::default().after_ms(100);
    let id = plugin.begin(Request::get("/").upstream(late)).unwrap();
    let start = plugin.world().now_ns();
    let exchange = plugin.finish(id).unwrap();
    exchange.assert_status(200);
    assert_eq!(plugin.world().now_ns() - start, 100_000_000);
}

#[test]
fn upstream_failures_read_from_yaml() {
    let request: Request = serde_norway::from_str(
        "{path: /x, upstream: {failure: reset_after_response_started, delay_ms: 5}}",
    )
    .unwrap();
    assert_eq!(
        request.upstream.failure,
        Some(UpstreamFailure::ResetAfterResponseStarted)
    );
    assert_eq!(request.upstream.delay_ms, 5);
    let error = serde_norway::from_str::<Request>("{upstream: {failure: gone}}").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("upstream.failure: unknown variant `gone`"),
        "{error}"
    );
}

/// What the probe sees of an upstream's response with trailers.
fn trailers_probe() -> serde_json::Value {
    serde_json::json!({
        "response_headers": [{"op": "headers", "map": "response_headers"}],
        "response_trailers": [{"op": "headers", "map": "response_trailers"}],
        "log": [
            {"op": "property", "path": ["response", "headers", "transfer-encoding"],
             "as": "status"}
        ]
    })
}

fn with_trailers() -> UpstreamResponse {
    UpstreamResponse {
        headers: [("content-type", "text/plain")].into_iter().collect(),
        body: Some("body".into()),
        trailers: [("x-trailer", "t1")].into_iter().collect(),
        ..UpstreamResponse::default()
    }
}

#[test]
fn upstream_trailers_are_dropped_unless_the_cluster_keeps_them() {
    let mut plugin = plugin(trailers_probe());
    let exchange = plugin
        .send(Request::get("/").upstream(with_trailers()))
        .unwrap();
    exchange
        .assert_body("body")
        .assert_header("transfer-encoding", Some("chunked"));
    assert!(exchange.outcome.trailers.0.is_empty());
    assert_eq!(
        exchange.outcome.messages(),
        [
            "request_headers: end_of_stream = true",
            "response_headers: end_of_stream = false",
            "response_headers: headers response_headers = :status=200, \
             content-type=text/plain, transfer-encoding=chunked, \
             x-envoy-upstream-service-time=0",
            "response_body: size = 4 end_of_stream = false",
            "response_body: size = 0 end_of_stream = true",
            "log: stream ends",
            "log: property response.headers.transfer-encoding = status 1, 0 bytes",
        ]
    );
}

#[test]
fn a_cluster_that_keeps_trailers_hands_them_to_the_filter() {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    let profile = Profile {
        upstream_trailers: true,
        ..Profile::envoy()
    };
    let mut plugin = filter
        .plugin()
        .profile(profile)
        .configuration(trailers_probe().to_string())
        .start()
        .unwrap();
    let exchange = plugin
        .send(Request::get("/").upstream(with_trailers()))
        .unwrap();
    // An HTTP/1.1 client without `enable_trailers` gets none.
    assert!(exchange.outcome.trailers.0.is_empty());
    let logs = exchange.outcome.messages();
    assert_eq!(
        logs[3..6],
        [
            "response_body: size = 4 end_of_stream = false",
            "response_trailers: count = 1",
            "response_trailers: headers response_trailers = x-trailer=t1",
        ]
    );
}

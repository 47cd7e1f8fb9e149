//! gRPC calls and streams through the probe filter: what the filter hears
//! back and when, what the upstream receives, and the clock.

use warden_host_test::{
    Disposition, Engine, GrpcAnswer, GrpcRecord, GrpcResponse, Plugin, Request, testing,
};

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

fn echo(delay_ms: u64) -> GrpcAnswer {
    GrpcAnswer::Respond(GrpcResponse {
        delay_ms,
        ..GrpcResponse::echo("echo: ")
    })
}

#[test]
fn a_unary_answer_after_its_delay_resumes_the_request() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "grpc_call", "cluster": "auth", "method": "Check", "message": "who",
             "metadata": [["x-tenant", "blue"]], "timeout_ms": 1000},
            {"op": "pause"}
        ],
        "grpc_response": [{"op": "grpc_received"}, {"op": "time"}, {"op": "resume", "which": "request"}]
    }));
    plugin.grpc_upstream("auth", "probe.Echo/Check", echo(250));
    let start = plugin.world().now_ns();
    let exchange = plugin.send(Request::get("/")).unwrap();
    exchange.assert_status(200).assert_forwarded(true);
    assert_eq!(
        exchange.outcome.messages(),
        vec![
            "request_headers: end_of_stream = true",
            "request_headers: grpc_call auth Check = Ok token 5",
            "grpc_response: token = 5 status = 0 size = 9",
            "grpc_response: grpc_received = \"echo: who\"",
            "grpc_response: time plausible = true",
            "grpc_response: resume request = Ok(())",
            "response_headers: end_of_stream = true",
            "log: stream ends",
        ]
    );
    assert_eq!(plugin.world().now_ns() - start, 250_000_000);
    assert_eq!(
        plugin.world().grpc_calls(),
        vec![GrpcRecord {
            token: 5,
            stream: false,
            cluster: "auth".into(),
            service: "probe.Echo".into(),
            method: "Check".into(),
            metadata: vec![("x-tenant".into(), "blue".into())],
            messages: vec!["who".into()],
            half_closed: false,
            cancelled: false,
        }]
    );
}

#[test]
fn a_slow_answer_past_the_timeout_is_envoys_deadline() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "grpc_call", "cluster": "auth", "method": "Check", "timeout_ms": 100},
            {"op": "pause"}
        ],
        "grpc_response": [{"op": "grpc_status"}, {"op": "resume", "which": "request"}]
    }));
    plugin.grpc_upstream("auth", "", echo(5_000));
    let exchange = plugin.send(Request::get("/")).unwrap();
    exchange.assert_status(200).assert_logged(
        "info",
        "grpc_response: grpc_status = 14 Some(\"upstream request timeout{response_timeout}\")",
    );
}

#[test]
fn a_silent_upstream_without_a_timeout_stalls_the_waiting_stream() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "grpc_call", "cluster": "auth", "method": "Check", "timeout_ms": 0},
            {"op": "pause"}
        ]
    }));
    plugin.grpc_upstream("auth", "", GrpcAnswer::Silent);
    let exchange = plugin.send(Request::get("/")).unwrap();
    assert_eq!(exchange.outcome.disposition, Disposition::Stalled);
}

#[test]
fn a_stream_server_can_push_and_end_on_its_own() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "grpc_stream", "cluster": "feed", "method": "Watch"},
            {"op": "grpc_send", "message": "a"},
            {"op": "grpc_send", "message": "b"},
            {"op": "pause"}
        ],
        "grpc_initial_metadata": [{"op": "grpc_metadata", "which": "initial"}],
        "grpc_message": [{"op": "grpc_received"}],
        "grpc_trailing_metadata": [{"op": "grpc_metadata", "which": "trailing"}],
        "grpc_close": [{"op": "grpc_status"}, {"op": "grpc_send", "message": "late"},
                       {"op": "resume", "which": "request"}]
    }));
    let feed = GrpcResponse {
        initial_metadata: vec![("x-feed".into(), "1".into())],
        messages: vec![b"hello".to_vec()],
        trailing_metadata: vec![("x-count".into(), "2".into())],
        status: 9,
        message: "enough".into(),
        close_after: Some(2),
        ..GrpcResponse::echo("got ")
    };
    plugin.grpc_upstream("feed", "", GrpcAnswer::Respond(feed));
    let exchange = plugin.send(Request::get("/")).unwrap();
    assert_eq!(
        exchange.outcome.messages(),
        vec![
            "request_headers: end_of_stream = true",
            "request_headers: grpc_stream feed Watch = Ok token 6",
            "request_headers: grpc_send 6 \"a\" end_stream = false = 0",
            "request_headers: grpc_send 6 \"b\" end_stream = false = 0",
            "grpc_initial_metadata: token = 6 count = 3",
            "grpc_initial_metadata: grpc_metadata initial = :status=200, \
             content-type=application/grpc, x-feed=1",
            "grpc_message: token = 6 size = 5",
            "grpc_message: grpc_received = \"hello\"",
            "grpc_message: token = 6 size = 5",
            "grpc_message: grpc_received = \"got a\"",
            "grpc_message: token = 6 size = 5",
            "grpc_message: grpc_received = \"got b\"",
            "grpc_trailing_metadata: token = 6 count = 3",
            "grpc_trailing_metadata: grpc_metadata trailing = grpc-status=9, \
             grpc-message=enough, x-count=2",
            "grpc_close: token = 6 status = 9",
            "grpc_close: grpc_status = 9 Some(\"enough{via_upstream}\")",
            "grpc_close: grpc_send 6 \"late\" end_stream = false = 0",
            "grpc_close: resume request = Ok(())",
            "response_headers: end_of_stream = true",
            "log: stream ends",
        ]
    );
    let record = &plugin.world().grpc_calls()[0];
    assert!(record.stream && !record.half_closed && !record.cancelled);
    assert_eq!(record.messages, vec!["a", "b"]);
}

#[test]
fn calls_from_the_root_context_are_answered_as_the_clock_advances() {
    let mut plugin = plugin(serde_json::json!({
        "configure": [{"op": "tick_period", "ms": 1000}],
        "tick": [
            {"op": "tick_period", "ms": 0},
            {"op": "grpc_call", "cluster": "auth", "method": "Check", "message": "tick",
             "timeout_ms": 5000}
        ],
        "grpc_response": [{"op": "grpc_received"}]
    }));
    plugin.grpc_upstream("auth", "", echo(500));
    plugin.take_logs();
    plugin.advance(1_200);
    let lines: Vec<String> = plugin.take_logs().into_iter().map(|l| l.message).collect();
    // The main thread's VM ticks as the worker's does, as in Envoy: each
    // makes its own call, and each VM numbers its tokens alone.
    assert_eq!(
        lines,
        vec![
            "tick: tick_period 0 = Ok(())",
            "tick: grpc_call auth Check = Ok token 5",
            "tick: tick_period 0 = Ok(())",
            "tick: grpc_call auth Check = Ok token 5",
        ]
    );
    plugin.advance(300);
    let lines: Vec<String> = plugin.take_logs().into_iter().map(|l| l.message).collect();
    assert_eq!(
        lines,
        vec![
            "grpc_response: token = 5 status = 0 size = 10",
            "grpc_response: grpc_received = \"echo: tick\"",
            "grpc_response: token = 5 status = 0 size = 10",
            "grpc_response: grpc_received = \"echo: tick\"",
        ]
    );
    assert_eq!(plugin.world().grpc_calls().len(), 2);
}

#[test]
fn a_cancelled_stream_is_recorded_and_silent() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "grpc_stream", "cluster": "feed", "method": "Watch",
             "metadata": [["x-a", "1"]]},
            {"op": "grpc_send", "message": "a"},
            {"op": "grpc_cancel"}
        ],
        "grpc_initial_metadata": [{"op": "log", "level": "info", "msg": "must not run"}]
    }));
    plugin.grpc_upstream("feed", "", echo(0));
    let exchange = plugin.send(Request::get("/")).unwrap();
    assert!(
        !exchange
            .outcome
            .messages()
            .iter()
            .any(|m| m == "must not run")
    );
    exchange.assert_logged("info", "request_headers: grpc_cancel 6 = 0");
    let record = &plugin.world().grpc_calls()[0];
    assert!(record.cancelled);
    assert_eq!(record.metadata, vec![("x-a".to_owned(), "1".to_owned())]);
}

#[test]
fn a_stream_to_a_cluster_that_is_down_hears_envoys_failure() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "grpc_stream", "cluster": "feed", "method": "Watch"},
            {"op": "grpc_send", "message": "a"},
            {"op": "pause"}
        ],
        "grpc_initial_metadata": [{"op": "grpc_metadata", "which": "initial"}],
        "grpc_trailing_metadata": [{"op": "grpc_metadata", "which": "trailing"}],
        "grpc_close": [{"op": "grpc_status"}, {"op": "resume", "which": "request"}]
    }));
    plugin.grpc_upstream("feed", "", GrpcAnswer::Down);
    let exchange = plugin.send(Request::get("/")).unwrap();
    let failure = "upstream connect error or disconnect/reset before headers. \
                   reset reason: remote connection failure";
    assert_eq!(
        exchange.outcome.messages()[3..9],
        [
            "grpc_initial_metadata: token = 6 count = 0".to_owned(),
            "grpc_initial_metadata: grpc_metadata initial = ".to_owned(),
            "grpc_trailing_metadata: token = 6 count = 4".to_owned(),
            format!(
                "grpc_trailing_metadata: grpc_metadata trailing = :status=200, \
                 content-type=application/grpc, grpc-status=14, grpc-message={failure}"
            ),
            "grpc_close: token = 6 status = 14".to_owned(),
            format!(
                "grpc_close: grpc_status = 14 Some(\"{failure}{{upstream_reset_before_response_\
                 started{{remote_connection_failure|delayed_connect_error:_Connection_refused}}}}\")"
            ),
        ]
    );
    assert!(plugin.world().grpc_calls()[0].messages.is_empty());
}

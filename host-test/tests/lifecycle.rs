//! The harness's lifecycle, with exact outcomes: the VMs Envoy starts and
//! what runs in each, foreign functions, bodies in several frames, and an
//! ABI 0.2.0 module. `tests/fidelity_lifecycle.rs` checks the same against
//! Envoy.

use warden_host_test::{Engine, Exchange, Plugin, Request, UpstreamResponse, testing};

fn probe(workers: usize, config: serde_json::Value) -> Plugin {
    let wasm = testing::build_filter("probe").unwrap();
    Engine::new()
        .unwrap()
        .load_file(wasm)
        .unwrap()
        .plugin()
        .name("probe")
        .root_id("probe")
        .workers(workers)
        .configuration(config.to_string())
        .start()
        .unwrap()
}

/// The messages of the exchange's log lines that start with one of
/// `prefixes`, in order.
fn starting_with(exchange: &Exchange, prefixes: &[&str]) -> Vec<String> {
    exchange
        .outcome
        .messages()
        .into_iter()
        .filter(|m| prefixes.iter().any(|prefix| m.starts_with(prefix)))
        .collect()
}

/// A POST to `/upload` whose body is sent chunked, one frame a chunk.
fn upload(chunks: &[&str]) -> Request {
    let mut request = Request::new("POST", "/upload").header("transfer-encoding", "chunked");
    request.body_chunks = chunks.iter().map(|&chunk| chunk.to_owned()).collect();
    request
}

/// An upstream answer sent chunked, one frame a chunk.
fn chunked(chunks: &[&str]) -> UpstreamResponse {
    UpstreamResponse {
        headers: [("transfer-encoding", "chunked")].into_iter().collect(),
        body_chunks: chunks.iter().map(|&chunk| chunk.to_owned()).collect(),
        ..UpstreamResponse::default()
    }
}

#[test]
fn the_canary_and_the_main_thread_configure_before_the_workers() {
    let mut plugin = probe(
        2,
        serde_json::json!({"configure": [{"op": "log", "level": "info", "msg": "configured"}]}),
    );
    let transcript = plugin.take_transcript().to_string();
    let configured: Vec<&str> = transcript
        .lines()
        .filter(|line| line.contains("proxy_on_configure"))
        .collect();
    assert_eq!(
        configured,
        [
            "→ [vm 3] proxy_on_configure(1, 62)",
            "→ [vm 2] proxy_on_configure(1, 62)",
            "→ [vm 0] proxy_on_configure(1, 62)",
            "→ [vm 1] proxy_on_configure(1, 62)",
        ]
    );
    let logs = plugin.take_logs();
    assert_eq!(logs.iter().filter(|l| l.message == "configured").count(), 4);
    assert_eq!(plugin.workers(), 2);
}

#[test]
fn requests_go_to_the_workers_only() {
    let mut plugin = probe(2, serde_json::json!({}));
    let error = plugin.send_on(2, Request::get("/")).unwrap_err();
    assert_eq!(error.to_string(), "no worker `2`");
    for expected in [0, 1, 0] {
        let id = plugin.begin(Request::get("/")).unwrap();
        assert_eq!(id.worker, expected);
        plugin.finish(id).unwrap().assert_status(200);
    }
}

#[test]
fn the_main_thread_ticks_and_the_canary_does_not() {
    let mut plugin = probe(
        2,
        serde_json::json!({
            "configure": [
                {"op": "tick_period", "ms": 100},
                {"op": "metric_define", "kind": "counter", "name": "configured"},
                {"op": "metric_increment", "name": "configured", "by": 1}
            ],
            "tick": [{"op": "log", "level": "info", "msg": "tick"}],
            "request_headers": [{"op": "metric_get", "name": "configured"}]
        }),
    );
    plugin.take_logs();
    plugin.advance(100);
    let ticks = plugin.take_logs();
    assert_eq!(ticks.iter().filter(|l| l.message == "tick").count(), 3);
    let transcript = plugin.take_transcript().to_string();
    assert!(
        transcript.contains("→ [vm 2] proxy_on_tick(1)"),
        "{transcript}"
    );
    assert!(!transcript.contains("[vm 3] proxy_on_tick"), "{transcript}");
    let exchange = plugin.send(Request::get("/")).unwrap();
    exchange.assert_logged("info", "request_headers: metric_get configured = Ok(4)");
}

#[test]
fn foreign_functions_answer_as_envoy_does() {
    let calls = [
        ("compress", "hello", false),
        ("uncompress", "789ccb48cdc9c90700062c0215", true),
        ("uncompress", "not zlib", false),
        ("no_such_function", "", false),
        ("clear_route_cache", "", false),
        (
            "set_envoy_filter_state",
            "0a0b6e6f2e737563682e6b6579120176",
            true,
        ),
        ("set_envoy_filter_state", "0f", true),
        ("expr_create", "1 + 1", false),
        ("expr_evaluate", "ab", false),
        ("expr_evaluate", "07000000", true),
        ("sign", "", false),
        ("sign", "1201ff", true),
    ];
    let ops: Vec<serde_json::Value> = calls
        .iter()
        .map(|(name, arg, hex)| serde_json::json!({"op": "foreign", "name": name, "arg": arg, "hex": hex}))
        .collect();
    let mut plugin = probe(1, serde_json::json!({"request_headers": ops}));
    let exchange = plugin.send(Request::get("/")).unwrap();
    let lines: Vec<String> = exchange
        .outcome
        .messages()
        .into_iter()
        .filter(|m| m.contains("foreign"))
        .collect();
    assert_eq!(
        lines,
        [
            "request_headers: foreign compress = 0 789ccb48cdc9c90700062c0215 (13 bytes)",
            "request_headers: foreign uncompress = 0 68656c6c6f (5 bytes)",
            "request_headers: foreign uncompress = 3 none (0 bytes)",
            "request_headers: foreign no_such_function = 1 none (0 bytes)",
            "request_headers: foreign clear_route_cache = 0 none (0 bytes)",
            "request_headers: foreign set_envoy_filter_state = 1 none (0 bytes)",
            "request_headers: foreign set_envoy_filter_state = 2 none (0 bytes)",
            "request_headers: foreign expr_create = 12 none (0 bytes)",
            "request_headers: foreign expr_evaluate = 2 none (0 bytes)",
            "request_headers: foreign expr_evaluate = 1 none (0 bytes)",
            "request_headers: foreign sign = 2 none (0 bytes)",
            "request_headers: foreign sign = 12 none (0 bytes)",
        ]
    );
}

#[test]
fn a_read_only_property_takes_one_value_and_a_second_set_fails() {
    let mut plugin = probe(
        1,
        serde_json::json!({
            "configure": [
                {"op": "foreign", "name": "declare_property", "arg": "0a0566697865641001", "hex": true},
                {"op": "foreign", "name": "declare_property", "arg": "0a0566697865641001", "hex": true}
            ],
            "request_headers": [
                {"op": "set_property", "path": ["fixed"], "value": "first"},
                {"op": "property", "path": ["fixed"], "as": "string"},
                {"op": "set_property", "path": ["fixed"], "value": "second"}
            ]
        }),
    );
    let declared: Vec<String> = plugin
        .take_logs()
        .into_iter()
        .map(|l| l.message)
        .filter(|m| m.contains("declare_property"))
        .collect();
    // The canary, the main thread and the worker each declare it once.
    let ok = "configure: foreign declare_property = 0 none (0 bytes)";
    let taken = "configure: foreign declare_property = 2 none (0 bytes)";
    assert_eq!(declared, [ok, taken, ok, taken, ok, taken]);
    let exchange = plugin.send(Request::get("/")).unwrap();
    exchange
        .assert_logged("info", "request_headers: set_property fixed = Ok(())")
        .assert_logged("info", "request_headers: property fixed = first")
        // The SDK panics on the second set's `BadArgument`.
        .assert_logged("critical", "unexpected status: 2")
        .assert_status(503);
}

#[test]
fn a_request_body_in_frames_reaches_the_filter_frame_by_frame() {
    let mut plugin = probe(
        1,
        serde_json::json!({"request_body": [{"op": "body", "buffer": "request"}]}),
    );
    let request = upload(&["first ", "second ", "third"]);
    let exchange = plugin.send(request).unwrap();
    let body = starting_with(&exchange, &["request_body"]);
    assert_eq!(
        body,
        [
            "request_body: size = 6 end_of_stream = false",
            "request_body: body request = first ",
            "request_body: size = 7 end_of_stream = false",
            "request_body: body request = second ",
            "request_body: size = 5 end_of_stream = false",
            "request_body: body request = third",
            "request_body: size = 0 end_of_stream = true",
            "request_body: body request = None",
        ]
    );
    let forwarded = exchange.outcome.upstream.as_ref().unwrap();
    assert_eq!(forwarded.body, "first second third");
}

#[test]
fn a_paused_body_buffers_until_the_filter_lets_it_through() {
    let mut plugin = probe(
        1,
        serde_json::json!({"request_body": [
            {"op": "pause_while_body_below", "buffer": "request", "size": 18}
        ]}),
    );
    let request = upload(&["first ", "second ", "third"]);
    let exchange = plugin.send(request).unwrap();
    let sizes = starting_with(&exchange, &["request_body: size"]);
    assert_eq!(
        sizes,
        [
            "request_body: size = 6 end_of_stream = false",
            "request_body: size = 13 end_of_stream = false",
            "request_body: size = 18 end_of_stream = false",
            "request_body: size = 0 end_of_stream = true",
        ]
    );
    assert_eq!(
        exchange.outcome.upstream.as_ref().unwrap().body,
        "first second third"
    );
}

#[test]
fn a_response_body_in_frames_reaches_the_filter_frame_by_frame() {
    let mut plugin = probe(
        1,
        serde_json::json!({"response_body": [{"op": "body", "buffer": "response"}]}),
    );
    let upstream = chunked(&["{\"a\":", "1}"]);
    let exchange = plugin.send(Request::get("/").upstream(upstream)).unwrap();
    let body = starting_with(&exchange, &["response_body"]);
    assert_eq!(
        body,
        [
            "response_body: size = 5 end_of_stream = false",
            "response_body: body response = {\"a\":",
            "response_body: size = 2 end_of_stream = false",
            "response_body: body response = 1}",
            "response_body: size = 0 end_of_stream = true",
            "response_body: body response = None",
        ]
    );
    exchange.assert_status(200);
    assert_eq!(exchange.outcome.body, "{\"a\":1}");
    assert_eq!(exchange.outcome.headers.get("content-length"), None);
}

#[test]
fn an_abi_0_2_0_filter_resumes_from_a_tick() {
    let wasm = testing::build_filter("abi020").unwrap();
    let mut plugin = Engine::new()
        .unwrap()
        .load_file(wasm)
        .unwrap()
        .plugin()
        .start()
        .unwrap();
    // The canary, the main thread's VM and the worker each create one.
    let roots = plugin.take_logs();
    let roots = roots
        .iter()
        .filter(|l| l.message == "root_context: created");
    assert_eq!(roots.count(), 3);
    let exchange = plugin.send(Request::get("/")).unwrap();
    exchange.assert_status(200);
    assert_eq!(
        exchange.outcome.messages(),
        [
            "stream_context: created",
            "request_headers: 8 headers, end_of_stream = 1",
            "tick: effective = 0, continue_stream(request) = 0",
            "response_headers: 3 headers, end_of_stream = 1",
            "log: stream ends",
        ]
    );
}

/// A module marked ABI 0.2.0 that imports `proxy_continue_request`,
/// written out by hand: one import, a memory, and the two exports the
/// harness requires.
const LEGACY_CONTINUE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x0d, 0x03, 0x60, 0x00, 0x01, 0x7f, 0x60, 0x00, 0x00, 0x60, 0x01, 0x7f, 0x01,
    0x7f, // types: () -> i32, () -> (), (i32) -> i32
    0x02, 0x1e, 0x01, 0x03, b'e', b'n', b'v', 0x16, b'p', b'r', b'o', b'x', b'y', b'_', b'c', b'o',
    b'n', b't', b'i', b'n', b'u', b'e', b'_', b'r', b'e', b'q', b'u', b'e', b's', b't', 0x00,
    0x00, // import env.proxy_continue_request: () -> i32
    0x03, 0x03, 0x02, 0x01, 0x02, // functions
    0x05, 0x03, 0x01, 0x00, 0x01, // memory, one page
    0x07, 0x3f, 0x03, // exports
    0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00, //
    0x17, b'p', b'r', b'o', b'x', b'y', b'_', b'a', b'b', b'i', b'_', b'v', b'e', b'r', b's', b'i',
    b'o', b'n', b'_', b'0', b'_', b'2', b'_', b'0', 0x00, 0x01, //
    0x18, b'p', b'r', b'o', b'x', b'y', b'_', b'o', b'n', b'_', b'm', b'e', b'm', b'o', b'r', b'y',
    b'_', b'a', b'l', b'l', b'o', b'c', b'a', b't', b'e', 0x00, 0x02, //
    0x0a, 0x09, 0x02, 0x02, 0x00, 0x0b, 0x04, 0x00, 0x41, 0x00, 0x0b, // code
];

#[test]
fn a_module_importing_proxy_continue_request_is_refused_as_envoy_refuses_it() {
    let filter = Engine::new().unwrap().load(LEGACY_CONTINUE).unwrap();
    let error = filter.plugin().start().unwrap_err().to_string();
    assert!(error.contains("proxy_continue_request"), "{error}");
}

#[test]
fn foreign_calls_with_bad_pointers_get_statuses() {
    let mut plugin = probe(
        1,
        serde_json::json!({"request_headers": [{"op": "foreign_abuse"}]}),
    );
    let exchange = plugin.send(Request::get("/")).unwrap();
    let lines: Vec<String> = exchange
        .outcome
        .messages()
        .into_iter()
        .filter(|m| m.contains("foreign_abuse"))
        .collect();
    let prefix = "request_headers: foreign_abuse: ";
    assert_eq!(
        lines,
        [
            format!("{prefix}name outside memory = 6 (0 bytes)"),
            format!("{prefix}arguments outside memory = 6 (0 bytes)"),
            // The result is placed, its address cannot be written back.
            format!("{prefix}result address outside memory = 6 (0 bytes)"),
            // No place for the address: Envoy still writes the size.
            format!("{prefix}no place for the result = 0 (13 bytes)"),
            format!("{prefix}unknown name, result outside memory = 1 (0 bytes)"),
        ]
    );
}

#[test]
fn behind_paused_headers_chunks_arrive_frame_by_frame_and_a_whole_body_in_one() {
    let config = serde_json::json!({
        "request_headers": [
            {"op": "callout", "cluster": "keys", "timeout_ms": 1000,
             "headers": [[":method", "GET"], [":path", "/keys"], [":authority", "keys"]]},
            {"op": "pause"}
        ],
        "callout": [{"op": "resume", "which": "request"}]
    });
    let sizes = |request: Request| {
        let mut plugin = probe(1, config.clone());
        plugin.upstream(
            "keys",
            warden_host_test::CalloutAnswer::Respond {
                status: 200,
                headers: vec![],
                body: b"{}".to_vec(),
                trailers: vec![],
            },
        );
        let exchange = plugin.send(request).unwrap();
        assert_eq!(
            exchange.outcome.upstream.as_ref().unwrap().body,
            "first second third"
        );
        starting_with(&exchange, &["request_body: size"])
    };
    let chunked = upload(&["first ", "second ", "third"]);
    assert_eq!(
        sizes(chunked),
        [
            "request_body: size = 6 end_of_stream = false",
            "request_body: size = 7 end_of_stream = false",
            "request_body: size = 5 end_of_stream = false",
            "request_body: size = 0 end_of_stream = true",
        ]
    );
    let whole = Request::new("POST", "/upload").body("first second third");
    assert_eq!(
        sizes(whole),
        ["request_body: size = 18 end_of_stream = true"]
    );
}

#[test]
fn a_headers_answer_of_2_continues_and_others_pause() {
    let wasm = testing::build_filter("abi020").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    let run = |answer: &str| {
        let mut plugin = filter.plugin().configuration(answer).start().unwrap();
        plugin.take_logs();
        let exchange = plugin.send(Request::get("/")).unwrap();
        exchange.assert_status(200);
        plugin.advance(500);
        let ticks: Vec<String> = plugin.take_logs().into_iter().map(|l| l.message).collect();
        (exchange.outcome.messages(), ticks)
    };
    let (stream, ticks) = run("2");
    assert_eq!(
        stream,
        [
            "stream_context: created",
            "request_headers: 8 headers, end_of_stream = 1",
            "response_headers: 3 headers, end_of_stream = 1",
            "log: stream ends",
        ]
    );
    // The stream is gone when the tick tries to make it effective.
    assert_eq!(ticks, ["tick: effective = 2, continue_stream(request) = 0"]);
    for answer in ["1", "3", "4", "100"] {
        let (stream, _) = run(answer);
        assert_eq!(
            stream.get(2).map(String::as_str),
            Some("tick: effective = 0, continue_stream(request) = 0"),
            "answer {answer}"
        );
    }
}

#[test]
fn what_is_due_arrives_between_chunks() {
    let mut plugin = probe(
        1,
        serde_json::json!({
            "request_headers": [
                {"op": "callout", "cluster": "keys", "timeout_ms": 1000,
                 "headers": [[":method", "GET"], [":path", "/keys"], [":authority", "keys"]]}
            ],
            "callout": [{"op": "log", "level": "info", "msg": "callout: answered"}]
        }),
    );
    plugin.upstream(
        "keys",
        warden_host_test::CalloutAnswer::Respond {
            status: 200,
            headers: vec![],
            body: b"{}".to_vec(),
            trailers: vec![],
        },
    );
    let request = upload(&["first ", "second "]);
    let exchange = plugin.send(request).unwrap();
    let order = starting_with(&exchange, &["request_body: size", "callout: answered"]);
    assert_eq!(
        order,
        [
            "callout: answered",
            "request_body: size = 6 end_of_stream = false",
            "request_body: size = 7 end_of_stream = false",
            "request_body: size = 0 end_of_stream = true",
        ]
    );
    // A body sent at once reaches the filter before the answer.
    let exchange = plugin
        .send(Request::new("POST", "/upload").body("whole"))
        .unwrap();
    let order = starting_with(&exchange, &["request_body: size", "callout: answered"]);
    assert_eq!(
        order,
        [
            "request_body: size = 5 end_of_stream = false",
            "request_body: size = 0 end_of_stream = true",
            "callout: answered",
        ]
    );
}

#[test]
fn a_paused_response_body_buffers_until_the_filter_lets_it_through() {
    let mut plugin = probe(
        1,
        serde_json::json!({"response_body": [
            {"op": "pause_while_body_below", "buffer": "response", "size": 6}
        ]}),
    );
    let upstream = chunked(&["aaaa", "bbbbbb"]);
    let exchange = plugin.send(Request::get("/").upstream(upstream)).unwrap();
    let sizes = starting_with(&exchange, &["response_body: size"]);
    assert_eq!(
        sizes,
        [
            "response_body: size = 4 end_of_stream = false",
            "response_body: size = 10 end_of_stream = false",
            "response_body: size = 0 end_of_stream = true",
        ]
    );
    assert_eq!(exchange.outcome.body, "aaaabbbbbb");
}

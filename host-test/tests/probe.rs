//! The harness against the probe filter: each host call family, with
//! exact outcomes.

use warden_host_test::{
    CalloutAnswer, Disposition, Engine, FailurePolicy, Plugin, Profile, Request, testing,
};

fn plugin(config: serde_json::Value) -> Plugin {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    filter
        .plugin()
        .name("probe")
        .root_id("probe_root")
        .configuration(config.to_string())
        .start()
        .unwrap()
}

#[test]
fn request_headers_carry_pseudo_headers_and_envoy_additions() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [{"op": "headers", "map": "request_headers"}]
    }));
    let exchange = plugin
        .send(Request::get("/a?b=1").header("X-Test", "yes"))
        .unwrap();
    exchange
        .assert_status(200)
        .assert_details("via_upstream")
        .assert_forwarded(true);
    exchange.assert_logged(
        "info",
        "request_headers: headers request_headers = :authority=example.com, :path=/a?b=1, \
         :method=GET, :scheme=http, x-test=yes, x-forwarded-for=192.0.2.1, \
         x-forwarded-proto=http, x-envoy-external-address=127.0.0.1, \
         x-request-id=00000000-0000-4000-8000-000000000002",
    );
}

#[test]
fn local_reply_stops_the_request_and_passes_the_response_side() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [{"op": "reply", "status": 403, "body": "no", "details": "denied here",
                             "headers": [["x-why", "policy"]]}],
        "response_headers": [{"op": "headers", "map": "response_headers"}]
    }));
    let exchange = plugin.send(Request::get("/")).unwrap();
    exchange
        .assert_status(403)
        .assert_body("no")
        .assert_details("denied_here")
        .assert_header("x-why", Some("policy"))
        .assert_forwarded(false);
    assert_eq!(exchange.outcome.disposition, Disposition::LocalReply);
    assert_eq!(
        exchange.outcome.messages(),
        vec![
            "request_headers: end_of_stream = true",
            "request_headers: reply 403 = 0",
            "response_headers: end_of_stream = false",
            "response_headers: headers response_headers = :status=403, x-why=policy, \
             content-length=2, content-type=text/plain",
            "response_body: size = 2 end_of_stream = true",
            "log: stream ends",
        ]
    );
}

#[test]
fn properties_use_envoy_names_and_encodings() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "property", "path": ["source", "address"], "as": "string"},
            {"op": "property", "path": ["source", "port"], "as": "int"},
            {"op": "property", "path": ["connection", "mtls"], "as": "bool"},
            {"op": "property", "path": ["connection", "tls_version"], "as": "string"},
            {"op": "property", "path": ["plugin_name"], "as": "string"},
            {"op": "property", "path": ["plugin_root_id"], "as": "string"},
            {"op": "property", "path": ["request", "url_path"], "as": "string"},
            {"op": "property", "path": ["request", "headers", "x-a"], "as": "string"},
            {"op": "property", "path": ["no", "such"], "as": "string"}
        ]
    }));
    let exchange = plugin
        .send(Request::get("/p?q").header("x-a", "1"))
        .unwrap();
    let logs = exchange.outcome.messages();
    assert_eq!(
        logs[1..10],
        [
            "request_headers: property source.address = 127.0.0.1:50000",
            "request_headers: property source.port = 50000",
            "request_headers: property connection.mtls = false",
            "request_headers: property connection.tls_version = None",
            "request_headers: property plugin_name = probe",
            "request_headers: property plugin_root_id = probe_root",
            "request_headers: property request.url_path = /p",
            "request_headers: property request.headers.x-a = 1",
            "request_headers: property no.such = None",
        ]
    );
}

#[test]
fn callout_answer_resumes_the_paused_request() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "callout", "cluster": "jwks", "timeout_ms": 1000,
             "headers": [[":method", "GET"], [":path", "/keys"], [":authority", "idp"]]},
            {"op": "pause"}
        ],
        "callout": [{"op": "callout_response"}, {"op": "resume", "which": "request"}]
    }));
    plugin.upstream_after(
        "jwks",
        CalloutAnswer::Respond {
            status: 200,
            headers: vec![],
            body: b"{\"keys\":[]}".to_vec(),
            trailers: vec![],
        },
        50,
    );
    let start = plugin.world().now_ns();
    let exchange = plugin.send(Request::get("/")).unwrap();
    exchange.assert_status(200).assert_forwarded(true);
    exchange.assert_logged(
        "info",
        "callout: callout_response status = Ok(Some(\"200\")) body = {\"keys\":[]}",
    );
    assert_eq!(plugin.world().now_ns() - start, 50_000_000);
    assert_eq!(plugin.world().callouts()[0].cluster, "jwks");
}

#[test]
fn callout_timeout_answers_504() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "callout", "cluster": "slow", "timeout_ms": 200,
             "headers": [[":method", "GET"], [":path", "/"], [":authority", "x"]]},
            {"op": "pause"}
        ],
        "callout": [{"op": "callout_response"}, {"op": "reply", "status": 401, "body": "", "details": "jwks"}]
    }));
    plugin.upstream("slow", CalloutAnswer::Timeout);
    let exchange = plugin.send(Request::get("/")).unwrap();
    exchange.assert_status(401).assert_details("jwks");
    exchange.assert_logged(
        "info",
        "status = Ok(Some(\"504\")) body = upstream request timeout",
    );
}

#[test]
fn callout_to_an_unknown_cluster_is_a_bad_argument() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "callout", "cluster": "nowhere", "timeout_ms": 200,
             "headers": [[":method", "GET"], [":path", "/"], [":authority", "x"]]}
        ]
    }));
    let exchange = plugin.send(Request::get("/")).unwrap();
    exchange
        .assert_logged("info", "callout nowhere = Err(BadArgument)")
        .assert_status(200);
}

#[test]
fn a_paused_stream_nobody_resumes_stalls() {
    let mut plugin = plugin(serde_json::json!({"request_headers": [{"op": "pause"}]}));
    let exchange = plugin.send(Request::get("/")).unwrap();
    assert_eq!(exchange.outcome.disposition, Disposition::Stalled);
    assert_eq!(exchange.outcome.status, None);
}

#[test]
fn a_panic_fails_closed_and_the_vm_stays_failed() {
    let mut plugin =
        plugin(serde_json::json!({"request_headers": [{"op": "panic", "msg": "boom"}]}));
    let exchange = plugin.send(Request::get("/")).unwrap();
    exchange
        .assert_status(503)
        .assert_details("wasm_fail_stream")
        .assert_forwarded(false);
    assert_eq!(exchange.outcome.disposition, Disposition::VmFailed);
    exchange.assert_logged("critical", "boom");
    assert!(plugin.failure(0).is_some());
    plugin.send(Request::get("/")).unwrap().assert_status(503);
}

#[test]
fn a_panic_fails_open_when_told_to() {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    let config = serde_json::json!({"request_headers": [{"op": "panic", "msg": "boom"}]});
    let mut plugin = filter
        .plugin()
        .configuration(config.to_string())
        .failure_policy(FailurePolicy::FailOpen)
        .start()
        .unwrap();
    plugin
        .send(Request::get("/"))
        .unwrap()
        .assert_status(200)
        .assert_forwarded(true);
}

#[test]
fn shared_data_and_metrics_are_shared_across_workers() {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    let config = serde_json::json!({
        "configure": [{"op": "metric_define", "kind": "counter", "name": "hits"}],
        "request_headers": [
            {"op": "shared_get", "key": "k"},
            {"op": "shared_set", "key": "k", "value": "v"},
            {"op": "metric_increment", "name": "hits", "by": 1}
        ]
    });
    let mut plugin = filter
        .plugin()
        .configuration(config.to_string())
        .workers(2)
        .start()
        .unwrap();
    plugin
        .send_on(0, Request::get("/"))
        .unwrap()
        .assert_logged("info", "shared_get k = None");
    plugin
        .send_on(1, Request::get("/"))
        .unwrap()
        .assert_logged("info", "shared_get k = v cas=true");
    let metrics = plugin.world().metrics();
    assert_eq!(
        metrics["hits"],
        warden_host_test::world::MetricValue::Counter { value: 2 }
    );
}

#[test]
fn ticks_fire_as_the_clock_advances() {
    let mut plugin = plugin(serde_json::json!({
        "configure": [{"op": "tick_period", "ms": 100}],
        "tick": [{"op": "log", "level": "info", "msg": "tick"}]
    }));
    plugin.take_logs();
    plugin.advance(350);
    let ticks = plugin
        .take_logs()
        .iter()
        .filter(|line| line.message == "tick")
        .count();
    // Three ticks on the worker's VM, three on the main thread's, as in
    // Envoy; the configuration canary never ticks.
    assert_eq!(ticks, 6);
}

#[test]
fn queues_notify_the_owner() {
    let mut plugin = plugin(serde_json::json!({
        "configure": [{"op": "queue_register", "name": "q"}],
        "request_headers": [{"op": "queue_enqueue", "vm_id": "", "name": "q", "value": "item"}],
        "queue_ready": [{"op": "queue_dequeue", "name": "q"}]
    }));
    // The notification is due at once: like Envoy's event loop, the
    // harness delivers it before the stream's next step.
    plugin.send(Request::get("/")).unwrap().assert_logs(&[
        ("info", "request_headers: end_of_stream = true"),
        ("info", "request_headers: queue_enqueue q = Ok(())"),
        ("info", "queue_ready: queue_dequeue q = item"),
        ("info", "response_headers: end_of_stream = true"),
        ("info", "log: stream ends"),
    ]);
}

#[test]
fn bodies_and_trailers_can_be_read_and_replaced() {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    let config = serde_json::json!({
        "request_body": [
            {"op": "body", "buffer": "request"},
            {"op": "set_body", "buffer": "request", "start": 0, "size": 100, "value": "replaced"}
        ],
        "request_trailers": [{"op": "headers", "map": "request_trailers"}]
    });
    // Envoy's HTTP/1.1 codec hands trailers to filters only when told to.
    let profile = Profile {
        http1_trailers: true,
        ..Profile::envoy()
    };
    let mut plugin = filter
        .plugin()
        .profile(profile)
        .configuration(config.to_string())
        .start()
        .unwrap();
    let request = Request::new("POST", "/")
        .body("original")
        .trailer("x-t", "1");
    let exchange = plugin.send(request).unwrap();
    exchange.assert_logged("info", "request_body: body request = original");
    exchange.assert_logged("info", "request_trailers: headers request_trailers = x-t=1");
    assert_eq!(exchange.outcome.upstream.as_ref().unwrap().body, "replaced");
}

#[test]
fn concurrent_streams_interleave() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [{"op": "get_header", "map": "request_headers", "name": "x-n"}]
    }));
    let first = plugin.begin(Request::get("/").header("x-n", "1")).unwrap();
    let second = plugin.begin(Request::get("/").header("x-n", "2")).unwrap();
    let b = plugin.finish(second).unwrap();
    let a = plugin.finish(first).unwrap();
    a.assert_logged("info", "get_header request_headers x-n = Ok(Some(\"1\"))");
    b.assert_logged("info", "get_header request_headers x-n = Ok(Some(\"2\"))");
}

#[test]
fn a_panic_reloads_the_vm_when_told_to() {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    let config =
        serde_json::json!({"request_headers": [{"op": "panic_if_header", "name": "x-boom"}]});
    let mut plugin = filter
        .plugin()
        .configuration(config.to_string())
        .failure_policy(FailurePolicy::FailReload)
        .start()
        .unwrap();
    let failed = plugin
        .send(Request::get("/").header("x-boom", "1"))
        .unwrap();
    failed.assert_status(503).assert_details("wasm_fail_stream");
    assert!(plugin.failure(0).is_some());
    plugin
        .send(Request::get("/"))
        .unwrap()
        .assert_status(200)
        .assert_forwarded(true);
    assert_eq!(plugin.failure(0), None);
}

#[test]
fn without_reload_a_failed_vm_answers_every_request() {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    let config =
        serde_json::json!({"request_headers": [{"op": "panic_if_header", "name": "x-boom"}]});
    let mut plugin = filter
        .plugin()
        .configuration(config.to_string())
        .start()
        .unwrap();
    plugin
        .send(Request::get("/").header("x-boom", "1"))
        .unwrap()
        .assert_status(503);
    plugin
        .send(Request::get("/"))
        .unwrap()
        .assert_status(503)
        .assert_forwarded(false);
}

#[test]
fn queues_deliver_across_workers() {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    let config = serde_json::json!({
        "configure": [{"op": "queue_register", "name": "q"}],
        "request_headers": [{"op": "queue_enqueue", "vm_id": "shared", "name": "q", "value": "from a stream"}],
        "queue_ready": [{"op": "queue_dequeue", "name": "q"}]
    });
    let mut plugin = filter
        .plugin()
        .vm_id("shared")
        .workers(2)
        .configuration(config.to_string())
        .start()
        .unwrap();
    plugin.take_transcript();
    plugin.take_logs();
    // Worker 1 registered last, so it owns the queue; worker 0 enqueues.
    let exchange = plugin.send_on(0, Request::get("/")).unwrap();
    exchange.assert_logged("info", "queue_ready: queue_dequeue q = from a stream");
    let transcript = exchange.transcript.to_string();
    assert!(
        transcript.contains("→ [vm 1] proxy_on_queue_ready(1, 1)"),
        "{transcript}"
    );
}

#[test]
fn tls_connection_properties_come_from_the_request() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [
            {"op": "property", "path": ["connection", "mtls"], "as": "bool"},
            {"op": "property", "path": ["connection", "tls_version"], "as": "string"},
            {"op": "property", "path": ["connection", "uri_san_peer_certificate"], "as": "string"},
            {"op": "property", "path": ["connection", "subject_peer_certificate"], "as": "string"},
            {"op": "get_header", "map": "request_headers", "name": "x-forwarded-proto"}
        ]
    }));
    let connection = warden_host_test::Connection {
        tls: Some(warden_host_test::Tls {
            version: Some("TLSv1.3".into()),
            peer_certificate: Some(warden_host_test::PeerCertificate {
                subject: "CN=reconciler".into(),
                uri_sans: vec!["spiffe://demo.test/ns/books/sa/reconciler".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let exchange = plugin
        .send(Request::get("/").connection(connection))
        .unwrap();
    assert_eq!(
        exchange.outcome.messages()[1..6],
        [
            "request_headers: property connection.mtls = true",
            "request_headers: property connection.tls_version = TLSv1.3",
            "request_headers: property connection.uri_san_peer_certificate = \
             spiffe://demo.test/ns/books/sa/reconciler",
            "request_headers: property connection.subject_peer_certificate = CN=reconciler",
            "request_headers: get_header request_headers x-forwarded-proto = Ok(Some(\"https\"))",
        ]
    );
}

#[test]
fn a_failing_assertion_shows_the_outcome_and_the_transcript() {
    let mut plugin = plugin(serde_json::json!({
        "request_headers": [{"op": "reply", "status": 401, "body": "", "details": "no_token"}]
    }));
    let exchange = plugin.send(Request::get("/")).unwrap();
    let failure = std::panic::catch_unwind(|| {
        exchange.assert_status(200);
    })
    .unwrap_err();
    let message = failure.downcast_ref::<String>().unwrap();
    assert!(
        message.starts_with("expected status 200, got Some(401)\n\noutcome:\n"),
        "{message}"
    );
    assert!(message.contains("\"details\": \"no_token\""), "{message}");
    assert!(
        message.contains("→ [vm 0] proxy_on_request_headers(2, 8, true)"),
        "{message}"
    );
    assert!(
        message.contains("← proxy_send_local_response(401, \"no_token\", \"\") = Ok"),
        "{message}"
    );
}

// --- properties from the configuration and the stream's progress ----------

fn plugin_with(profile: Profile, config: serde_json::Value) -> Plugin {
    let wasm = testing::build_filter("probe").unwrap();
    let filter = Engine::new().unwrap().load_file(wasm).unwrap();
    filter
        .plugin()
        .name("probe")
        .profile(profile)
        .configuration(config.to_string())
        .start()
        .unwrap()
}

fn property(path: &str, kind: &str) -> serde_json::Value {
    serde_json::json!({"op": "property", "path": path.split('/').collect::<Vec<_>>(), "as": kind})
}

#[test]
fn xds_properties_come_from_the_profile() {
    use warden_host_test::profile::{Metadata, Struct, StructValue};
    let mut profile = Profile::envoy();
    profile.xds.node.id = "edge-7".into();
    profile.xds.node.metadata = Struct(vec![("weight".into(), StructValue::Number(2.0))]);
    profile.xds.route.name = "ledger".into();
    profile.xds.cluster.name = "books".into();
    profile.xds.cluster.metadata = Metadata::single("warden", "tier", "gold");
    profile.xds.upstream_host.address = "10.0.0.5:9443".into();
    profile.xds.upstream_host.metadata = None;
    let checks = [
        property("xds/node/id", "string"),
        property("xds/node/metadata", "hex"),
        property("xds/node/metadata/weight", "hex"),
        property("xds/route_name", "string"),
        property("xds/cluster_name", "string"),
        property("xds/cluster_metadata", "hex"),
        property("xds/cluster_metadata/filter_metadata/warden/tier", "string"),
        property("xds/upstream_host_metadata", "status"),
        property("upstream/address", "status"),
        property("upstream/port", "int"),
        property("upstream/request_attempt_count", "int"),
    ];
    let mut plugin = plugin_with(
        profile,
        serde_json::json!({"request_headers": checks, "response_headers": checks[7..]}),
    );
    let exchange = plugin.send(Request::get("/")).unwrap();
    assert_eq!(
        exchange.outcome.messages()[1..],
        [
            "request_headers: property xds.node.id = edge-7",
            // One pair, `weight` = the double 2.0.
            "request_headers: property xds.node.metadata = 01000000060000000800000077656967687400\
             000000000000004000",
            "request_headers: property xds.node.metadata.weight = 0000000000000040",
            "request_headers: property xds.route_name = ledger",
            "request_headers: property xds.cluster_name = books",
            // filter_metadata { "warden": { "tier": "gold" } }
            "request_headers: property xds.cluster_metadata = \
             0a1a0a0677617264656e12100a0e0a047469657212061a04676f6c64",
            "request_headers: property xds.cluster_metadata.filter_metadata.warden.tier = gold",
            "request_headers: property xds.upstream_host_metadata = status 1, 0 bytes",
            "request_headers: property upstream.address = status 1, 0 bytes",
            "request_headers: property upstream.port = None",
            "request_headers: property upstream.request_attempt_count = 0",
            "response_headers: end_of_stream = true",
            // No host metadata: Envoy cannot serialize the null message.
            "response_headers: property xds.upstream_host_metadata = status 3, 0 bytes",
            "response_headers: property upstream.address = status 0, 13 bytes",
            "response_headers: property upstream.port = 9443",
            "response_headers: property upstream.request_attempt_count = 1",
            "log: stream ends",
        ]
    );
}

#[test]
fn sizes_and_durations_follow_the_stream() {
    let sizes = [
        property("request/total_size", "int"),
        property("request/headers_bytes", "int"),
        property("response/total_size", "int"),
        property("response/headers_bytes", "int"),
        property("response/size", "int"),
        property("response/flags", "int"),
        property("response/backend_latency", "int"),
        property("request/duration", "int"),
    ];
    let mut plugin = plugin_with(
        Profile::envoy(),
        serde_json::json!({
            "request_headers": [
                {"op": "callout", "cluster": "auth", "timeout_ms": 1000,
                 "headers": [[":method", "GET"], [":path", "/"], [":authority", "auth"]]},
                {"op": "pause"}
            ],
            "callout": [{"op": "resume", "which": "request"}],
            "response_headers": [property("request/path", "status"), sizes[7].clone()],
            "log": sizes,
        }),
    );
    let answer = CalloutAnswer::Respond {
        status: 200,
        headers: vec![],
        body: vec![],
        trailers: vec![],
    };
    plugin.upstream_after("auth", answer, 250);
    let exchange = plugin.send(Request::get("/d")).unwrap();
    // The request headers the filter saw come to 175 bytes; the router adds
    // `x-envoy-expected-rq-timeout-ms: 15000`. The response headers (55
    // bytes: `:status`, `content-length`, the service time) gain `date` and
    // `server` on the way out.
    assert_eq!(
        exchange.outcome.messages()[2..],
        [
            "callout: resume request = Ok(())",
            "response_headers: end_of_stream = true",
            "response_headers: property request.path = status 1, 0 bytes",
            "response_headers: property request.duration = None",
            "log: stream ends",
            "log: property request.total_size = 210",
            "log: property request.headers_bytes = 210",
            "log: property response.total_size = 99",
            "log: property response.headers_bytes = 99",
            "log: property response.size = 0",
            "log: property response.flags = 0",
            "log: property response.backend_latency = 0",
            "log: property request.duration = 250000000",
        ]
    );
}

#[test]
fn a_local_reply_is_sized_as_envoy_sends_it() {
    let mut plugin = plugin_with(
        Profile::envoy(),
        serde_json::json!({
            "request_headers": [{"op": "reply", "status": 403, "body": "no"}],
            "response_headers": [
                property("request/path", "string"),
                property("response/total_size", "int"),
                property("response/grpc_status", "int"),
            ],
            "log": [
                property("response/total_size", "int"),
                property("response/size", "int"),
                property("response/backend_latency", "status"),
                property("upstream/request_attempt_count", "int"),
                property("request/duration", "int"),
            ],
        }),
    );
    let request = Request::get("/d").header("connection", "close");
    let exchange = plugin.send(request).unwrap();
    exchange.assert_status(403);
    // 47 bytes of headers (`:status`, `content-length`, `content-type`);
    // at the end `date`, `server` and, for a client that closes,
    // `connection: close` too, and the two bytes of body.
    assert_eq!(
        exchange.outcome.messages()[2..],
        [
            "response_headers: end_of_stream = false",
            "response_headers: property request.path = /d",
            "response_headers: property response.total_size = 47",
            "response_headers: property response.grpc_status = 7",
            "response_body: size = 2 end_of_stream = true",
            "log: stream ends",
            "log: property response.total_size = 108",
            "log: property response.size = 2",
            "log: property response.backend_latency = status 1, 0 bytes",
            "log: property upstream.request_attempt_count = 0",
            "log: property request.duration = 0",
        ]
    );
}

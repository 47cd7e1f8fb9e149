//! Network (TCP) connections in the harness, through the tcp-probe
//! filter, with exact outcomes: what each side received, who closed the
//! connection and why, and every log line. What Envoy does in the same
//! situations is checked by `tests/fidelity_tcp.rs`; these tests pin the
//! harness's own API (several connections, workers, the clock, failure
//! policies, errors and transcripts).

use warden_host_test::{
    CloseReason, Closer, Connection, Conversation, Engine, FailurePolicy, Filter, Plugin,
    PluginBuilder, Step, TcpUpstream, Tls, UpstreamScript, testing,
};

fn filter() -> Filter {
    let wasm = testing::build_filter("tcp-probe").unwrap();
    Engine::new().unwrap().load_file(&wasm).unwrap()
}

fn plugin(filter: &Filter, config: &str) -> PluginBuilder {
    filter
        .plugin()
        .name("tcp-probe")
        .root_id("tcp-probe")
        .vm_id("tcp-probe")
        .configuration(config.to_owned())
}

fn echo() -> TcpUpstream {
    TcpUpstream::new(UpstreamScript::Echo)
}

fn send(text: &str) -> Step {
    Step::Send(text.into())
}

#[test]
fn bytes_pass_both_ways_and_the_connection_closes_when_both_sides_end() {
    let filter = filter();
    let config = r#"{"downstream_data": [{"op": "data", "buffer": "downstream"}]}"#;
    let mut plugin = plugin(&filter, config).start().unwrap();
    let conversation = plugin
        .converse(
            Connection::default(),
            echo(),
            &[send("hello"), Step::ClientClose],
        )
        .unwrap();
    conversation
        .assert_upstream_received("hello")
        .assert_client_received("hello")
        .assert_closed(Closer::Proxy, CloseReason::BothEnded)
        .assert_logs(&[
            "[info] new_connection: opened",
            "[info] downstream_data: size = 5 end_of_stream = false",
            "[info] downstream_data: data downstream = Ok \"hello\"",
            "[info] upstream_data: size = 5 end_of_stream = false",
            "[info] downstream_data: size = 0 end_of_stream = true",
            "[info] downstream_data: data downstream = Ok \"\"",
            "[info] upstream_data: size = 0 end_of_stream = true",
            "[info] upstream_close: peer = unknown",
            "[info] downstream_close: peer = local",
            "[info] done: connection done",
            "[info] log: connection ends",
        ]);
    let outcome = &conversation.outcome;
    assert!(outcome.upstream_connected && outcome.upstream_end && outcome.client_end);
    assert_eq!(outcome.steps.len(), 3);
    assert_eq!(outcome.steps[1].client, "hello");
    assert!(!outcome.steps[1].client_end && outcome.steps[2].client_end);
    assert_eq!(
        outcome.closed.map(|closed| closed.at_ns),
        Some(warden_host_test::plugin::DEFAULT_START_NS)
    );
}

#[test]
fn the_transcript_shows_the_network_callbacks() {
    let filter = filter();
    let mut plugin = plugin(&filter, "{}").start().unwrap();
    let conversation = plugin
        .converse(Connection::default(), echo(), &[send("hi")])
        .unwrap();
    let transcript = conversation.transcript.to_string();
    for call in [
        "proxy_on_context_create(2, 1)",
        "proxy_on_new_connection(2)",
        "client sends \"hi\"",
        "proxy_on_downstream_data(2, 2, false)",
        "proxy_on_upstream_data(2, 2, false)",
    ] {
        assert!(transcript.contains(call), "no `{call}` in:\n{transcript}");
    }
    conversation.assert_open();
}

#[test]
fn a_paused_chunk_waits_for_the_next_and_goes_on_with_it() {
    let filter = filter();
    let config = r#"{"downstream_data": [{"op": "pause_until", "needle": "!"}]}"#;
    let mut plugin = plugin(&filter, config).start().unwrap();
    let id = plugin.connect(Connection::default(), echo()).unwrap();
    plugin.client_send(id, "one").unwrap();
    assert_eq!(plugin.connection_outcome(id).unwrap().upstream_received, "");
    plugin.client_send(id, "two!").unwrap();
    plugin
        .take_connection(id)
        .unwrap()
        .assert_upstream_received("onetwo!")
        .assert_client_received("onetwo!")
        .assert_logs(&[
            "[info] new_connection: opened",
            "[info] downstream_data: size = 3 end_of_stream = false",
            "[info] downstream_data: pause_until \"!\" = true",
            "[info] downstream_data: size = 7 end_of_stream = false",
            "[info] downstream_data: pause_until \"!\" = false",
            "[info] upstream_data: size = 7 end_of_stream = false",
        ]);
}

#[test]
fn a_held_connection_reaches_the_upstream_when_a_tick_resumes_it() {
    let filter = filter();
    let config = r#"{
        "new_connection": [{"op": "tick_period", "ms": 1000}, {"op": "pause"}],
        "tick": [
            {"op": "on_last_connection"},
            {"op": "resume", "which": "downstream"},
            {"op": "tick_period", "ms": 0}
        ]
    }"#;
    let mut plugin = plugin(&filter, config).start().unwrap();
    let id = plugin.connect(Connection::default(), echo()).unwrap();
    plugin.client_send(id, "early").unwrap();
    plugin.advance(999);
    let waiting = plugin.connection_outcome(id).unwrap();
    assert!(!waiting.upstream_connected);
    assert_eq!(waiting.client_received, "");
    plugin.advance(1);
    assert_eq!(
        plugin.take_logs().len(),
        3,
        "the tick's lines are the plugin's"
    );
    plugin
        .take_connection(id)
        .unwrap()
        .assert_upstream_received("early")
        .assert_client_received("early")
        .assert_logs(&[
            "[info] new_connection: opened",
            "[info] new_connection: tick_period 1000 = Ok(())",
            "[info] downstream_data: size = 5 end_of_stream = false",
            "[info] upstream_data: size = 5 end_of_stream = false",
        ]);
}

#[test]
fn several_connections_at_once_on_two_workers() {
    let filter = filter();
    let config = r#"{
        "configure": [{"op": "metric_define", "kind": "counter", "name": "opened"}],
        "new_connection": [{"op": "metric_increment", "name": "opened", "by": 1}]
    }"#;
    let mut plugin = plugin(&filter, config).workers(2).start().unwrap();
    let reply = |text: &str| TcpUpstream::new(UpstreamScript::Reply(text.into()));
    let a = plugin
        .connect(Connection::default(), reply("to a"))
        .unwrap();
    let b = plugin
        .connect(Connection::default(), reply("to b"))
        .unwrap();
    assert_eq!((a.worker, b.worker), (0, 1));
    plugin.client_send(b, "from b").unwrap();
    plugin.client_send(a, "from a").unwrap();
    plugin.client_close(a).unwrap();
    let a = plugin.take_connection(a).unwrap();
    let b = plugin.take_connection(b).unwrap();
    a.assert_upstream_received("from a")
        .assert_client_received("to a")
        .assert_closed(Closer::Proxy, CloseReason::BothEnded);
    b.assert_upstream_received("from b")
        .assert_client_received("to b")
        .assert_open();
    assert_eq!(
        plugin.world().metrics()["opened"],
        warden_host_test::world::MetricValue::Counter { value: 2 }
    );
}

#[test]
fn the_upstream_closing_first_leaves_the_close_to_the_client() {
    let filter = filter();
    let mut plugin = plugin(&filter, "{}").start().unwrap();
    let id = plugin.connect(Connection::default(), echo()).unwrap();
    plugin.client_send(id, "hi").unwrap();
    plugin.upstream_close(id).unwrap();
    let outcome = plugin.connection_outcome(id).unwrap();
    assert!(outcome.client_end && outcome.closed.is_none());
    plugin.client_close(id).unwrap();
    plugin
        .take_connection(id)
        .unwrap()
        .assert_closed(Closer::Client, CloseReason::BothEnded)
        .assert_logs(&[
            "[info] new_connection: opened",
            "[info] downstream_data: size = 2 end_of_stream = false",
            "[info] upstream_data: size = 2 end_of_stream = false",
            "[info] upstream_data: size = 0 end_of_stream = true",
            "[info] upstream_close: peer = unknown",
            "[info] downstream_data: size = 0 end_of_stream = true",
            "[info] downstream_close: peer = remote",
            "[info] done: connection done",
            "[info] log: connection ends",
        ]);
}

#[test]
fn the_filter_closes_the_connection() {
    let filter = filter();
    let config = r#"{"upstream_data": [{"op": "close", "which": "upstream"}]}"#;
    let mut plugin = plugin(&filter, config).start().unwrap();
    let conversation = plugin
        .converse(Connection::default(), echo(), &[send("secret")])
        .unwrap();
    conversation
        .assert_upstream_received("secret")
        .assert_client_received("")
        .assert_closed(Closer::Proxy, CloseReason::Filter)
        .assert_logs(&[
            "[info] new_connection: opened",
            "[info] downstream_data: size = 6 end_of_stream = false",
            "[info] upstream_data: size = 6 end_of_stream = false",
            "[info] upstream_data: close upstream = Ok",
            "[info] downstream_close: peer = local",
            "[info] done: connection done",
            "[info] log: connection ends",
        ]);
    assert!(conversation.outcome.client_end && conversation.outcome.upstream_end);
}

#[test]
fn a_refused_upstream_closes_the_connection() {
    let filter = filter();
    let mut plugin = plugin(&filter, "{}").start().unwrap();
    let refuse = TcpUpstream::new(UpstreamScript::Refuse);
    let conversation = plugin
        .converse(Connection::default(), refuse, &[send("lost")])
        .unwrap();
    conversation
        .assert_upstream_received("")
        .assert_client_received("")
        .assert_closed(Closer::Proxy, CloseReason::UpstreamRefused)
        .assert_logs(&[
            "[info] new_connection: opened",
            "[info] downstream_close: peer = local",
            "[info] done: connection done",
            "[info] log: connection ends",
        ]);
    assert!(!conversation.outcome.upstream_connected);
}

#[test]
fn properties_of_a_connection() {
    let filter = filter();
    let property =
        |path: &[&str], kind: &str| serde_json::json!({"op": "property", "path": path, "as": kind});
    let config = serde_json::json!({
        "new_connection": [property(&["source", "port"], "int")],
        "downstream_data": [
            property(&["connection", "id"], "int"),
            property(&["connection_id"], "int"),
            property(&["destination", "port"], "int"),
            property(&["upstream", "address"], "string"),
            property(&["upstream", "port"], "int"),
            property(&["request", "time"], "int"),
            property(&["connection", "requested_server_name"], "string"),
            property(&["connection", "tls_version"], "string"),
            property(&["connection", "mtls"], "bool"),
        ],
    });
    let mut plugin = plugin(&filter, &config.to_string()).start().unwrap();
    let connection = Connection {
        source: "10.0.0.7:41000".into(),
        destination: "10.0.0.1:9000".into(),
        id: 42,
        tls: Some(Tls {
            server_name: Some("db.example".into()),
            ..Tls::default()
        }),
    };
    let upstream = echo().at("10.0.0.2:5432");
    let conversation = plugin.converse(connection, upstream, &[send("x")]).unwrap();
    let start = warden_host_test::plugin::DEFAULT_START_NS;
    let time_line = format!("[info] downstream_data: property request.time = {start}");
    conversation.assert_logs(&[
        "[info] new_connection: opened",
        "[info] new_connection: property source.port = 41000",
        "[info] downstream_data: size = 1 end_of_stream = false",
        "[info] downstream_data: property connection.id = 42",
        "[info] downstream_data: property connection_id = 42",
        "[info] downstream_data: property destination.port = 9000",
        "[info] downstream_data: property upstream.address = 10.0.0.2:5432",
        "[info] downstream_data: property upstream.port = 5432",
        &time_line,
        "[info] downstream_data: property connection.requested_server_name = db.example",
        "[info] downstream_data: property connection.tls_version = TLSv1.3",
        "[info] downstream_data: property connection.mtls = false",
        "[info] upstream_data: size = 1 end_of_stream = false",
    ]);
}

fn panicking(filter: &Filter, policy: FailurePolicy) -> Plugin {
    let config = r#"{"downstream_data": [{"op": "panic_if_data", "needle": "boom"}]}"#;
    plugin(filter, config)
        .failure_policy(policy)
        .start()
        .unwrap()
}

fn boom(plugin: &mut Plugin) -> Conversation {
    plugin
        .converse(Connection::default(), echo(), &[send("boom")])
        .unwrap()
}

#[test]
fn a_trap_closes_the_connection_and_fail_closed_closes_the_next() {
    let filter = filter();
    let mut plugin = panicking(&filter, FailurePolicy::FailClosed);
    let first = boom(&mut plugin);
    first
        .assert_closed(Closer::Proxy, CloseReason::VmFailed)
        .assert_upstream_received("");
    assert!(first.outcome.vm_failed);
    let lines: Vec<(&str, &str)> = first
        .outcome
        .logs
        .iter()
        .map(|line| (line.level.as_str(), line.message.as_str()))
        .collect();
    let [opened, data, panicked] = lines.as_slice() else {
        panic!("expected three lines, got {lines:?}");
    };
    assert_eq!(*opened, ("info", "new_connection: opened"));
    assert_eq!(
        *data,
        ("info", "downstream_data: size = 4 end_of_stream = false")
    );
    // The panic message names the probe's source line, then the message.
    assert_eq!(panicked.0, "critical");
    assert!(
        panicked.1.starts_with("panicked at src/lib.rs:")
            && panicked.1.ends_with(":\ndata holds \"boom\""),
        "{panicked:?}"
    );
    let next = plugin
        .converse(Connection::default(), echo(), &[send("again")])
        .unwrap();
    next.assert_closed(Closer::Proxy, CloseReason::VmFailed)
        .assert_upstream_received("")
        .assert_logs(&[]);
    assert!(!next.outcome.upstream_connected);
}

#[test]
fn fail_open_lets_later_connections_through_without_the_filter() {
    let filter = filter();
    let mut plugin = panicking(&filter, FailurePolicy::FailOpen);
    boom(&mut plugin).assert_closed(Closer::Proxy, CloseReason::VmFailed);
    plugin
        .converse(
            Connection::default(),
            echo(),
            &[send("boom"), Step::ClientClose],
        )
        .unwrap()
        .assert_upstream_received("boom")
        .assert_client_received("boom")
        .assert_closed(Closer::Proxy, CloseReason::BothEnded)
        .assert_logs(&[]);
}

#[test]
fn fail_reload_starts_a_fresh_vm_a_second_after_the_failure() {
    let filter = filter();
    let mut plugin = panicking(&filter, FailurePolicy::FailReload);
    boom(&mut plugin);
    plugin.advance(999);
    boom_free(&mut plugin).assert_closed(Closer::Proxy, CloseReason::VmFailed);
    plugin.advance(1);
    boom_free(&mut plugin)
        .assert_client_received("fine")
        .assert_open();
    assert_eq!(plugin.failure(0), None);
}

fn boom_free(plugin: &mut Plugin) -> Conversation {
    plugin
        .converse(Connection::default(), echo(), &[send("fine")])
        .unwrap()
}

#[test]
fn misuse_of_the_api_is_an_error() {
    let filter = filter();
    let mut plugin = plugin(&filter, "{}").start().unwrap();
    let id = plugin.connect(Connection::default(), echo()).unwrap();
    plugin.client_close(id).unwrap();
    let error = plugin.client_send(id, "late").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the client sends after ending its stream"
    );
    plugin.take_connection(id).unwrap();
    let error = plugin.client_send(id, "gone").unwrap_err();
    assert_eq!(error.to_string(), "no open stream with context `2`");
    assert!(plugin.connect_on(5, Connection::default(), echo()).is_err());
}

#[test]
fn steps_and_upstreams_read_from_yaml() {
    let steps: Vec<Step> =
        serde_norway::from_str("[!send hi, client_close, upstream_close, !advance 5]").unwrap();
    assert_eq!(
        steps,
        [
            send("hi"),
            Step::ClientClose,
            Step::UpstreamClose,
            Step::Advance(5)
        ]
    );
    let upstream: TcpUpstream =
        serde_norway::from_str("{address: '10.0.0.2:80', script: !greet hello}").unwrap();
    assert_eq!(
        upstream,
        TcpUpstream::new(UpstreamScript::Greet("hello".into())).at("10.0.0.2:80")
    );
}

#[test]
fn bad_arguments_get_statuses_not_crashes() {
    let filter = filter();
    let config = r#"{"downstream_data": [{"op": "abuse"}]}"#;
    let mut plugin = plugin(&filter, config).start().unwrap();
    plugin
        .converse(Connection::default(), echo(), &[send("x")])
        .unwrap()
        .assert_client_received("x")
        .assert_logs(&[
            "[info] new_connection: opened",
            "[info] downstream_data: size = 1 end_of_stream = false",
            "[info] downstream_data: abuse: downstream data into pointers outside memory = InvalidMemoryAccess",
            "[info] downstream_data: abuse: downstream data from outside memory = InvalidMemoryAccess",
            "[info] downstream_data: abuse: buffer of an unknown type = BadArgument",
            "[info] downstream_data: abuse: property into pointers outside memory = InvalidMemoryAccess",
            "[info] downstream_data: abuse: continue an unknown stream type = BadArgument",
            "[info] downstream_data: abuse: close an unknown stream type = BadArgument",
            "[info] upstream_data: size = 1 end_of_stream = false",
        ]);
}

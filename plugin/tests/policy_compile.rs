//! The policy compiler: a valid policy compiles, and every kind of mistake
//! is refused with a message that says exactly where and what.

use serde_json::{Value, json};
use warden::config::Config;
use warden::policy::{Policy, Status};

/// A small valid policy without token issuers.
fn base() -> Value {
    json!({
        "revision": "r1",
        "groups": [
            { "name": "finance", "grants": [
                { "name": "books", "methods": ["GET"], "hosts": ["books.test"], "paths": ["/ledger/**"] }
            ]},
            { "name": "hr", "grants": [] }
        ],
        "identities": [
            { "id": "ledger-sync", "owner": "finance team", "status": "active", "groups": ["finance"],
              "credentials": [{ "kind": "api_key", "key_id": "ls01", "sha256": "a".repeat(64) }] },
            { "id": "old-job", "owner": "hr team", "status": "retired",
              "status_reason": "replaced", "status_since": "2026-06-30", "groups": ["hr"] }
        ]
    })
}

/// A change that breaks the base policy.
type Edit = Box<dyn FnOnce(&mut Value)>;

fn compile(policy: &Value) -> Result<Policy, String> {
    Policy::from_json(&policy.to_string()).map_err(|e| e.to_string())
}

fn refused(edit: impl FnOnce(&mut Value)) -> String {
    let mut policy = base();
    edit(&mut policy);
    compile(&policy).map(|_| ()).unwrap_err()
}

#[test]
fn the_base_policy_compiles_with_lifecycle_kept() {
    let policy = compile(&base()).unwrap();
    assert_eq!(policy.revision(), "r1");
    let (identity, _) = policy.identity_by_key_id("ls01").unwrap();
    assert_eq!(identity.id, "ledger-sync");
    assert_eq!(identity.status, Status::Active);
    let groups: Vec<&str> = policy
        .groups_of(identity)
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(groups, ["finance"]);
}

#[test]
fn syntax_and_shape_errors_name_line_and_column() {
    let error = Policy::from_json("{\n  \"revision\": \"r1\",\n  \"groups\": [ }").unwrap_err();
    assert_eq!(error.to_string(), "line 3 column 15: expected value");
    let error = Policy::from_json("{\"revision\": \"r1\", \"grups\": []}").unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 1 column 26: unknown field `grups`, expected one of `revision`, `issuers`, \
         `groups`, `identities`, `mtls`"
    );
}

#[test]
fn each_mistake_is_refused_with_its_place() {
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|p| p["revision"] = json!(" ")),
            "revision: must not be empty",
        ),
        (
            Box::new(|p| p["groups"][1]["name"] = json!("finance")),
            "groups[1] `finance`: duplicate group name",
        ),
        (
            Box::new(|p| p["groups"][0]["name"] = json!("Finance")),
            "groups[0] `Finance`: name `Finance`: must be 1 to 64 of `[a-z0-9._-]`",
        ),
        (
            Box::new(|p| p["groups"][0]["grants"][0]["methods"] = json!(["get"])),
            "groups[0] `finance`: grants[0] `books`: method `get`: must be upper-case letters or `*`",
        ),
        (
            Box::new(|p| p["groups"][0]["grants"][0]["paths"] = json!([])),
            "groups[0] `finance`: grants[0] `books`: methods, hosts and paths must each list at \
             least one entry",
        ),
        (
            Box::new(|p| p["groups"][0]["grants"][0]["paths"] = json!(["/a/**/b"])),
            "groups[0] `finance`: grants[0] `books`: path `/a/**/b`: `**` is allowed only as the \
             last segment",
        ),
        (
            Box::new(|p| p["groups"][0]["grants"][0]["hosts"] = json!(["Books.test:443"])),
            "groups[0] `finance`: grants[0] `books`: host `Books.test:443`: must be `*`, a \
             lower-case host name, or `*.` and a host name",
        ),
        (
            Box::new(|p| p["identities"][1]["id"] = json!("ledger-sync")),
            "identities[1] `ledger-sync`: duplicate identity id",
        ),
        (
            Box::new(|p| p["identities"][0]["groups"] = json!(["payroll"])),
            "identities[0] `ledger-sync`: unknown group `payroll`",
        ),
        (
            Box::new(|p| p["identities"][0]["owner"] = json!("")),
            "identities[0] `ledger-sync`: owner: must not be empty",
        ),
        (
            Box::new(|p| p["identities"][1]["status_reason"] = Value::Null),
            "identities[1] `old-job`: a `suspended` or `retired` identity needs status_reason and \
             status_since",
        ),
        (
            Box::new(|p| p["identities"][1]["status_since"] = json!("30/06/2026")),
            "identities[1] `old-job`: status_since `30/06/2026`: must be a date `YYYY-MM-DD`",
        ),
        (
            Box::new(|p| p["identities"][0]["status_reason"] = json!("why")),
            "identities[0] `ledger-sync`: status_reason and status_since apply only to \
             `suspended` and `retired`",
        ),
        (
            Box::new(|p| p["identities"][0]["credentials"][0]["sha256"] = json!("ABC")),
            "identities[0] `ledger-sync`: credentials[0]: sha256 `ABC`: must be 64 lower-case hex \
             digits",
        ),
        (
            Box::new(|p| {
                p["identities"][1]["credentials"] =
                    json!([{ "kind": "api_key", "key_id": "ls01", "sha256": "b".repeat(64) }]);
            }),
            "identities[1] `old-job`: credentials[0]: api key id `ls01` already proves another \
             identity",
        ),
        (
            Box::new(|p| {
                p["identities"][0]["credentials"] =
                    json!([{ "kind": "jwt", "issuer": "corp", "subject": "s" }]);
            }),
            "identities[0] `ledger-sync`: credentials[0]: unknown issuer `corp`",
        ),
    ];
    for (edit, message) in cases {
        assert_eq!(refused(edit), message);
    }
}

#[test]
fn plugin_configuration_errors_are_refused() {
    let config = |value: Value| {
        Config::from_json(value.to_string().as_bytes())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        config(json!({ "policy": base(), "header_prefix": "X-Warden-" })),
        "configuration: header_prefix `X-Warden-`: must be lower-case letters, digits and `-`"
    );
    assert_eq!(
        config(json!({ "policy": base(), "api_key_header": "x-warden-key" })),
        "configuration: api_key_header `x-warden-key` starts with header_prefix `x-warden-` and \
         would be removed"
    );
    let unknown = Config::from_json(b"{\"policy_url\": \"x\"}").unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "configuration: line 1 column 13: unknown field `policy_url`, expected one of `policy`, \
         `api_key_header`, `header_prefix`"
    );
}

//! The configuration Envoy computes the `xds.*` and `upstream.*`
//! properties from: the node, the listener, the route, the cluster and the
//! upstream host, as a bootstrap or xDS would state them.
//!
//! Envoy hands messages to filters protobuf-serialized, and unwraps the
//! well-known `google.protobuf.Struct` into a map. This module keeps a
//! small encoder for the few message types involved (`Node`, `Locality`,
//! `BuildVersion`, `Metadata`, `Struct`, `Value`, `ListValue`) and a
//! property tree ([`Attr`]) that a property path walks, as Envoy's
//! expression context does.

use crate::abi::{Status, encode_pairs};

/// What the stream's configuration says about where it runs. The defaults
/// are those of `tests/fidelity/envoy.yaml`.
#[derive(Clone, Debug, PartialEq)]
pub struct Xds {
    /// The node (`xds.node`).
    pub node: Node,
    /// The listener the request arrived on.
    pub listener: Listener,
    /// The route the request matched.
    pub route: Route,
    /// The cluster the route sends to.
    pub cluster: Cluster,
    /// The host of that cluster the request reaches.
    pub upstream_host: UpstreamHost,
}

impl Default for Xds {
    fn default() -> Xds {
        Xds {
            node: Node::default(),
            listener: Listener {
                metadata: Metadata::single("probe", "listener", "ingress"),
                direction: 1,
                filter_chain_name: "plain".into(),
            },
            route: Route {
                name: "everything".into(),
                metadata: Metadata::single("probe", "route", "everything"),
                virtual_host: "all".into(),
                virtual_host_metadata: Metadata::single("probe", "virtual_host", "all"),
            },
            cluster: Cluster {
                name: "upstream".into(),
                metadata: Metadata::single("probe", "cluster", "upstream"),
                endpoints: 1,
            },
            upstream_host: UpstreamHost {
                address: "127.0.0.1:8080".into(),
                local_address: "127.0.0.1:40000".into(),
                metadata: Some(Metadata::single("probe", "host", "echo")),
                locality_metadata: None,
                locality: Locality::default(),
            },
        }
    }
}

/// Envoy's `config.core.v3.Node`, as far as the harness models it: the
/// extensions and client features Envoy lists are left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// `id`. Defaults to `probe-node`.
    pub id: String,
    /// `cluster`. Defaults to `probe-cluster`.
    pub cluster: String,
    /// `metadata`. Defaults to `{role: edge}`.
    pub metadata: Struct,
    /// `locality`. Defaults to region `lab`, zone `a`.
    pub locality: Locality,
    /// `user_agent_build_version`. Defaults to the Envoy 1.40.0 release
    /// build the corpus runs.
    pub build: BuildVersion,
}

impl Default for Node {
    fn default() -> Node {
        Node {
            id: "probe-node".into(),
            cluster: "probe-cluster".into(),
            metadata: Struct(vec![("role".into(), StructValue::String("edge".into()))]),
            locality: Locality {
                region: "lab".into(),
                zone: "a".into(),
                sub_zone: String::new(),
            },
            build: BuildVersion::default(),
        }
    }
}

/// `config.core.v3.Locality`. Empty by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locality {
    /// `region`.
    pub region: String,
    /// `zone`.
    pub zone: String,
    /// `sub_zone`.
    pub sub_zone: String,
}

/// `config.core.v3.BuildVersion`: Envoy's version and build facts.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildVersion {
    /// Major, minor and patch numbers.
    pub version: (u32, u32, u32),
    /// Build facts. Envoy serializes them in its hash map's order, which
    /// changes from one run of Envoy to the next.
    pub metadata: Struct,
}

impl Default for BuildVersion {
    fn default() -> BuildVersion {
        let text = |key: &str, value: &str| (key.to_owned(), StructValue::String(value.into()));
        BuildVersion {
            version: (1, 40, 0),
            metadata: Struct(vec![
                text("revision.status", "Clean"),
                text("ssl.version", "BoringSSL"),
                text("revision.sha", "9e5580933739775e8bce696a57a2e1bc99368f23"),
                text("build.type", "RELEASE"),
            ]),
        }
    }
}

/// The listener: `xds.listener_metadata`, `xds.listener_direction`,
/// `xds.filter_chain_name`.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    /// The listener's metadata.
    pub metadata: Metadata,
    /// `traffic_direction`: 0 unspecified, 1 inbound, 2 outbound.
    pub direction: i64,
    /// The name of the filter chain that took the connection.
    pub filter_chain_name: String,
}

/// The route and its virtual host.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// `xds.route_name`; empty for an unnamed route.
    pub name: String,
    /// `xds.route_metadata`.
    pub metadata: Metadata,
    /// `xds.virtual_host_name`.
    pub virtual_host: String,
    /// `xds.virtual_host_metadata`.
    pub virtual_host_metadata: Metadata,
}

/// The cluster the route names.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// `xds.cluster_name`.
    pub name: String,
    /// `xds.cluster_metadata`.
    pub metadata: Metadata,
    /// `upstream.num_endpoints`: the cluster's hosts.
    pub endpoints: u64,
}

/// The host the request reaches, once the router has picked it.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamHost {
    /// `upstream.address` and `upstream.port`, `ip:port`.
    pub address: String,
    /// `upstream.local_address`: Envoy's end of the upstream connection.
    pub local_address: String,
    /// `xds.upstream_host_metadata`; without any, Envoy answers
    /// `SerializationFailure`.
    pub metadata: Option<Metadata>,
    /// `xds.upstream_host_locality_metadata`; likewise.
    pub locality_metadata: Option<Metadata>,
    /// `upstream.locality`.
    pub locality: Locality,
}

/// `config.core.v3.Metadata`: structs by filter name, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    /// `filter_metadata`.
    pub filter_metadata: Vec<(String, Struct)>,
}

impl Metadata {
    /// Metadata with one filter's struct holding one string.
    pub fn single(filter: &str, key: &str, value: &str) -> Metadata {
        let fields = vec![(key.to_owned(), StructValue::String(value.to_owned()))];
        Metadata {
            filter_metadata: vec![(filter.to_owned(), Struct(fields))],
        }
    }
}

/// `google.protobuf.Struct`, its fields in the order given. Envoy keeps
/// them in a hash map: with several fields, give them in the order Envoy
/// serializes them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Struct(pub Vec<(String, StructValue)>);

/// `google.protobuf.Value`.
#[derive(Clone, Debug, PartialEq)]
pub enum StructValue {
    /// `null_value`.
    Null,
    /// `number_value`.
    Number(f64),
    /// `string_value`.
    String(String),
    /// `bool_value`.
    Bool(bool),
    /// `struct_value`.
    Struct(Struct),
    /// `list_value`.
    List(Vec<StructValue>),
}

impl From<&serde_json::Value> for StructValue {
    fn from(value: &serde_json::Value) -> StructValue {
        use serde_json::Value as Json;
        match value {
            Json::Null => StructValue::Null,
            Json::Bool(flag) => StructValue::Bool(*flag),
            Json::Number(number) => StructValue::Number(number.as_f64().unwrap_or_default()),
            Json::String(text) => StructValue::String(text.clone()),
            Json::Array(items) => StructValue::List(items.iter().map(StructValue::from).collect()),
            Json::Object(object) => StructValue::Struct(Struct(
                object
                    .iter()
                    .map(|(key, value)| (key.clone(), StructValue::from(value)))
                    .collect(),
            )),
        }
    }
}

// --- protobuf encoding ---------------------------------------------------

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const DELIMITED: u8 = 2;

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn delimited(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, DELIMITED);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A proto3 string: left out when empty.
fn string(out: &mut Vec<u8>, field: u32, text: &str) {
    if !text.is_empty() {
        delimited(out, field, text.as_bytes());
    }
}

/// A proto3 integer: left out when zero.
fn uint(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(out, field, VARINT);
        varint(out, value);
    }
}

/// A map entry: key (1) and value (2), both always written.
fn entry(out: &mut Vec<u8>, field: u32, name: &str, value: &[u8]) {
    let mut pair = Vec::new();
    delimited(&mut pair, 1, name.as_bytes());
    delimited(&mut pair, 2, value);
    delimited(out, field, &pair);
}

/// `google.protobuf.Value`: the set member of the `kind` oneof, written
/// even when it holds its default.
pub(crate) fn encode_value(value: &StructValue) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        StructValue::Null => {
            key(&mut out, 1, VARINT);
            varint(&mut out, 0);
        }
        StructValue::Number(number) => {
            key(&mut out, 2, FIXED64);
            out.extend_from_slice(&number.to_le_bytes());
        }
        StructValue::String(text) => delimited(&mut out, 3, text.as_bytes()),
        StructValue::Bool(flag) => {
            key(&mut out, 4, VARINT);
            varint(&mut out, u64::from(*flag));
        }
        StructValue::Struct(fields) => delimited(&mut out, 5, &encode_struct(fields)),
        StructValue::List(items) => {
            let mut list = Vec::new();
            for item in items {
                delimited(&mut list, 1, &encode_value(item));
            }
            delimited(&mut out, 6, &list);
        }
    }
    out
}

/// `google.protobuf.Struct`.
pub(crate) fn encode_struct(fields: &Struct) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in &fields.0 {
        entry(&mut out, 1, name, &encode_value(value));
    }
    out
}

/// `config.core.v3.Metadata`.
pub(crate) fn encode_metadata(metadata: &Metadata) -> Vec<u8> {
    let mut out = Vec::new();
    for (filter, fields) in &metadata.filter_metadata {
        entry(&mut out, 1, filter, &encode_struct(fields));
    }
    out
}

/// `config.core.v3.Locality`.
pub(crate) fn encode_locality(locality: &Locality) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 1, &locality.region);
    string(&mut out, 2, &locality.zone);
    string(&mut out, 3, &locality.sub_zone);
    out
}

fn encode_semantic_version((major, minor, patch): (u32, u32, u32)) -> Vec<u8> {
    let mut out = Vec::new();
    uint(&mut out, 1, major.into());
    uint(&mut out, 2, minor.into());
    uint(&mut out, 3, patch.into());
    out
}

/// `config.core.v3.BuildVersion`.
pub(crate) fn encode_build_version(build: &BuildVersion) -> Vec<u8> {
    let mut out = Vec::new();
    delimited(&mut out, 1, &encode_semantic_version(build.version));
    delimited(&mut out, 2, &encode_struct(&build.metadata));
    out
}

/// `config.core.v3.Node`: `id`, `cluster`, `metadata` and `locality`
/// when given, `user_agent_name` and `user_agent_build_version`.
pub(crate) fn encode_node(node: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 1, &node.id);
    string(&mut out, 2, &node.cluster);
    if !node.metadata.0.is_empty() {
        delimited(&mut out, 3, &encode_struct(&node.metadata));
    }
    if node.locality != Locality::default() {
        delimited(&mut out, 4, &encode_locality(&node.locality));
    }
    string(&mut out, 6, USER_AGENT);
    delimited(&mut out, 8, &encode_build_version(&node.build));
    out
}

/// `node.user_agent_name`.
const USER_AGENT: &str = "envoy";

// --- the property tree ---------------------------------------------------

/// A property value as Envoy's expression context holds it, before it is
/// serialized for the filter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Attr {
    Bytes(Vec<u8>),
    Int(i64),
    Uint(u64),
    Double(f64),
    Bool(bool),
    Null,
    Map(Vec<(Vec<u8>, Attr)>),
    List(Vec<Attr>),
    /// A protobuf message: its serialized form and its fields by name.
    Message(Vec<u8>, Vec<(&'static str, Attr)>),
}

impl Attr {
    pub(crate) fn text(text: &str) -> Attr {
        Attr::Bytes(text.as_bytes().to_vec())
    }

    /// Follows a path: a map by key, a message by field name, a list by
    /// index. Anything else, or a missing key, is `NotFound`.
    pub(crate) fn walk(self, path: &[&[u8]]) -> Result<Attr, Status> {
        let Some((first, rest)) = path.split_first() else {
            return Ok(self);
        };
        let next = match self {
            Attr::Map(entries) => entries
                .into_iter()
                .find(|(name, _)| name == first)
                .map(|(_, value)| value),
            Attr::Message(_, fields) => fields
                .into_iter()
                .find(|(name, _)| name.as_bytes() == *first)
                .map(|(_, value)| value),
            Attr::List(items) => std::str::from_utf8(first)
                .ok()
                .and_then(|index| index.parse::<usize>().ok())
                .and_then(|index| items.into_iter().nth(index)),
            _ => None,
        };
        next.ok_or(Status::NotFound)?.walk(rest)
    }

    /// Serializes as Envoy does: strings as bytes, numbers as 8 bytes
    /// little-endian, booleans as one byte, maps as pairs of serialized
    /// keys and values, lists as pairs with empty values, messages in
    /// their wire form. A null cannot be serialized.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, Status> {
        Ok(match self {
            Attr::Bytes(bytes) => bytes.clone(),
            Attr::Int(value) => value.to_le_bytes().to_vec(),
            Attr::Uint(value) => value.to_le_bytes().to_vec(),
            Attr::Double(value) => value.to_le_bytes().to_vec(),
            Attr::Bool(value) => vec![u8::from(*value)],
            Attr::Null => return Err(Status::SerializationFailure),
            Attr::Map(entries) => {
                let mut pairs = Vec::with_capacity(entries.len());
                for (name, value) in entries {
                    pairs.push((name.clone(), value.encode()?));
                }
                property_pairs(&pairs)
            }
            Attr::List(items) => {
                let mut pairs = Vec::with_capacity(items.len());
                for item in items {
                    pairs.push((item.encode()?, Vec::new()));
                }
                property_pairs(&pairs)
            }
            Attr::Message(bytes, _) => bytes.clone(),
        })
    }
}

/// Pairs as a property value: unlike a header map, an empty one is its
/// count, four zero bytes.
pub(crate) fn property_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    if pairs.is_empty() {
        return 0u32.to_le_bytes().to_vec();
    }
    encode_pairs(pairs)
}

/// A struct as Envoy's expression context sees it: unwrapped into a map.
fn struct_attr(fields: &Struct) -> Attr {
    Attr::Map(
        fields
            .0
            .iter()
            .map(|(name, value)| (name.as_bytes().to_vec(), value_attr(value)))
            .collect(),
    )
}

fn value_attr(value: &StructValue) -> Attr {
    match value {
        StructValue::Null => Attr::Null,
        StructValue::Number(number) => Attr::Double(*number),
        StructValue::String(text) => Attr::text(text),
        StructValue::Bool(flag) => Attr::Bool(*flag),
        StructValue::Struct(fields) => struct_attr(fields),
        StructValue::List(items) => Attr::List(items.iter().map(value_attr).collect()),
    }
}

pub(crate) fn metadata_attr(metadata: &Metadata) -> Attr {
    let filters = metadata
        .filter_metadata
        .iter()
        .map(|(name, fields)| (name.as_bytes().to_vec(), struct_attr(fields)))
        .collect();
    Attr::Message(
        encode_metadata(metadata),
        vec![
            ("filter_metadata", Attr::Map(filters)),
            ("typed_filter_metadata", Attr::Map(Vec::new())),
        ],
    )
}

pub(crate) fn locality_attr(locality: &Locality) -> Attr {
    Attr::Message(
        encode_locality(locality),
        vec![
            ("region", Attr::text(&locality.region)),
            ("zone", Attr::text(&locality.zone)),
            ("sub_zone", Attr::text(&locality.sub_zone)),
        ],
    )
}

fn build_attr(build: &BuildVersion) -> Attr {
    let (major, minor, patch) = build.version;
    let version = Attr::Message(
        encode_semantic_version(build.version),
        vec![
            ("major_number", Attr::Uint(major.into())),
            ("minor_number", Attr::Uint(minor.into())),
            ("patch", Attr::Uint(patch.into())),
        ],
    );
    Attr::Message(
        encode_build_version(build),
        vec![
            ("version", version),
            ("metadata", struct_attr(&build.metadata)),
        ],
    )
}

pub(crate) fn node_attr(node: &Node) -> Attr {
    Attr::Message(
        encode_node(node),
        vec![
            ("id", Attr::text(&node.id)),
            ("cluster", Attr::text(&node.cluster)),
            ("metadata", struct_attr(&node.metadata)),
            ("locality", locality_attr(&node.locality)),
            ("user_agent_name", Attr::text(USER_AGENT)),
            ("user_agent_version", Attr::text("")),
            ("user_agent_build_version", build_attr(&node.build)),
            ("extensions", Attr::List(Vec::new())),
            ("client_features", Attr::List(Vec::new())),
            ("listening_addresses", Attr::List(Vec::new())),
            ("dynamic_parameters", Attr::Map(Vec::new())),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn build_version_encodes_as_envoy_1_40_serializes_it() {
        // Read from Envoy 1.40.0 with the probe's
        // `xds.node.user_agent_build_version` as hex. The four build facts
        // come in the order of Envoy's hash map, which changes from one run
        // of Envoy to the next; these bytes are one run's.
        let envoy = concat!(
            "0a0408011028128d010a1a0a0f7265766973696f6e2e73746174757312071a05436c6561",
            "6e0a1a0a0b73736c2e76657273696f6e120b1a09426f72696e6753534c0a3a0a0c726576",
            "6973696f6e2e736861122a1a283965353538303933333733393737356538626365363936",
            "61353761326531626339393336386632330a170a0a6275696c642e7479706512091a0752",
            "454c45415345",
        );
        assert_eq!(hex(&encode_build_version(&BuildVersion::default())), envoy);
    }

    #[test]
    fn values_encode_each_kind_of_the_oneof() {
        assert_eq!(hex(&encode_value(&StructValue::Null)), "0800");
        assert_eq!(
            hex(&encode_value(&StructValue::Number(1.5))),
            "11000000000000f83f"
        );
        assert_eq!(
            hex(&encode_value(&StructValue::String(String::new()))),
            "1a00"
        );
        assert_eq!(hex(&encode_value(&StructValue::Bool(false))), "2000");
        let nested = StructValue::Struct(Struct(vec![("a".into(), StructValue::Bool(true))]));
        assert_eq!(hex(&encode_value(&nested)), "2a090a070a016112022001");
        let list = StructValue::List(vec![StructValue::Bool(true)]);
        assert_eq!(hex(&encode_value(&list)), "32040a022001");
    }

    #[test]
    fn metadata_nests_structs_under_filter_names() {
        let metadata = Metadata::single("f", "k", "v");
        // filter_metadata entry { key "f", value Struct { fields { "k": "v" } } }
        assert_eq!(
            hex(&encode_metadata(&metadata)),
            "0a0f0a0166120a0a080a016b12031a0176"
        );
    }

    #[test]
    fn locality_and_node_leave_out_empty_fields() {
        assert_eq!(encode_locality(&Locality::default()), Vec::<u8>::new());
        let node = Node {
            id: String::new(),
            cluster: "c".into(),
            metadata: Struct::default(),
            locality: Locality::default(),
            build: BuildVersion {
                version: (1, 0, 0),
                metadata: Struct::default(),
            },
        };
        // cluster "c", user_agent_name "envoy", build { version { 1 } metadata {} }
        assert_eq!(
            hex(&encode_node(&node)),
            "1201633205656e766f7942060a0208011200"
        );
    }

    #[test]
    fn paths_walk_messages_maps_and_lists() {
        let attr = metadata_attr(&Metadata::single("probe", "route", "everything"));
        let found = attr.walk(&[b"filter_metadata", b"probe", b"route"]);
        assert_eq!(found, Ok(Attr::text("everything")));
        let list = Attr::List(vec![Attr::Int(7)]);
        assert_eq!(list.clone().walk(&[b"0"]), Ok(Attr::Int(7)));
        assert_eq!(list.walk(&[b"1"]), Err(Status::NotFound));
        assert_eq!(Attr::Int(1).walk(&[b"x"]), Err(Status::NotFound));
    }

    #[test]
    fn null_cannot_be_serialized_even_inside_a_map() {
        let map = Attr::Map(vec![(b"k".to_vec(), Attr::Null)]);
        assert_eq!(map.encode(), Err(Status::SerializationFailure));
        assert_eq!(
            Attr::List(vec![Attr::text("a")]).encode(),
            Ok(encode_pairs(&[(b"a".to_vec(), Vec::new())]))
        );
        assert_eq!(Attr::Map(Vec::new()).encode(), Ok(vec![0, 0, 0, 0]));
    }
}

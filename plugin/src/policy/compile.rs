//! From [`PolicySource`] to [`Policy`]: every reference resolved, every
//! pattern parsed, every key checked, or a [`PolicyError`] that says where.

use super::source::{CredentialSource, GrantSource, IdentitySource, PolicySource, StatusSource};
use crate::authorize::{Grant, HostPattern};
use crate::policy::PathPattern;
use crate::verify::Issuers;
use crate::verify::spiffe::SpiffeId;
use std::collections::BTreeMap;
use std::fmt;

/// A policy ready for requests.
#[derive(Debug)]
pub struct Policy {
    revision: String,
    issuers: Issuers,
    groups: Vec<Group>,
    identities: Vec<Identity>,
    by_subject: BTreeMap<(String, String), (usize, bool)>,
    by_key_id: BTreeMap<String, (usize, [u8; 32])>,
    by_spiffe: BTreeMap<String, usize>,
    trust_domains: Vec<String>,
}

/// A group and the grants its members hold.
#[derive(Debug)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// What members may reach.
    pub grants: Vec<Grant>,
}

/// An API client's account.
#[derive(Debug)]
pub struct Identity {
    /// The identity's id.
    pub id: String,
    /// Who answers for it.
    pub owner: String,
    /// Its lifecycle status.
    pub status: Status,
    /// Indexes into the policy's groups.
    groups: Vec<usize>,
}

/// Lifecycle status of an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// In service.
    Active,
    /// Temporarily barred.
    Suspended {
        /// Why.
        reason: String,
        /// Since when (`YYYY-MM-DD`).
        since: String,
    },
    /// Permanently out of service.
    Retired {
        /// Why.
        reason: String,
        /// Since when (`YYYY-MM-DD`).
        since: String,
    },
}

/// A policy that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

fn error(context: &str, message: impl fmt::Display) -> PolicyError {
    PolicyError(format!("{context}: {message}"))
}

impl Policy {
    /// Parses and compiles a policy from JSON text.
    ///
    /// # Errors
    ///
    /// Returns the line and column of a syntax or shape error, or the path
    /// to the first element that does not make sense.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        let source: PolicySource =
            serde_json::from_str(text).map_err(|e| PolicyError(describe_json_error(&e)))?;
        Self::compile(&source)
    }

    /// Compiles a parsed policy.
    ///
    /// # Errors
    ///
    /// Returns the path to the first element that does not make sense, for
    /// example ``identities[2] `payroll-export`: unknown group `hr` ``.
    pub fn compile(source: &PolicySource) -> Result<Self, PolicyError> {
        if source.revision.trim().is_empty() {
            return Err(PolicyError("revision: must not be empty".into()));
        }
        let issuers = Issuers::compile(&source.issuers).map_err(|e| error("issuers", e))?;
        let mut policy = Self {
            revision: source.revision.clone(),
            issuers,
            groups: Vec::new(),
            identities: Vec::new(),
            by_subject: BTreeMap::new(),
            by_key_id: BTreeMap::new(),
            by_spiffe: BTreeMap::new(),
            trust_domains: compile_mtls(source)?,
        };
        policy.add_groups(source)?;
        for (i, identity) in source.identities.iter().enumerate() {
            let context = format!("identities[{i}] `{}`", identity.id);
            policy
                .add_identity(identity)
                .map_err(|e| error(&context, e))?;
        }
        Ok(policy)
    }

    fn add_groups(&mut self, source: &PolicySource) -> Result<(), PolicyError> {
        for (i, group) in source.groups.iter().enumerate() {
            let context = format!("groups[{i}] `{}`", group.name);
            check_name(&group.name).map_err(|e| error(&context, e))?;
            if self.group_index(&group.name).is_some() {
                return Err(error(&context, "duplicate group name"));
            }
            let mut grants: Vec<Grant> = Vec::with_capacity(group.grants.len());
            for (j, grant) in group.grants.iter().enumerate() {
                let context = format!("{context}: grants[{j}] `{}`", grant.name);
                if grants.iter().any(|g| g.name == grant.name) {
                    return Err(error(&context, "duplicate grant name in group"));
                }
                grants.push(compile_grant(grant).map_err(|e| error(&context, e))?);
            }
            self.groups.push(Group {
                name: group.name.clone(),
                grants,
            });
        }
        Ok(())
    }

    fn add_identity(&mut self, source: &IdentitySource) -> Result<(), String> {
        check_name(&source.id)?;
        if self.identities.iter().any(|i| i.id == source.id) {
            return Err("duplicate identity id".into());
        }
        if source.owner.trim().is_empty() {
            return Err("owner: must not be empty".into());
        }
        let status = compile_status(source)?;
        let mut groups = Vec::with_capacity(source.groups.len());
        for name in &source.groups {
            let index = self
                .group_index(name)
                .ok_or(format!("unknown group `{name}`"))?;
            if groups.contains(&index) {
                return Err(format!("group `{name}` listed twice"));
            }
            groups.push(index);
        }
        let index = self.identities.len();
        for (k, credential) in source.credentials.iter().enumerate() {
            self.add_credential(index, credential)
                .map_err(|e| format!("credentials[{k}]: {e}"))?;
        }
        self.identities.push(Identity {
            id: source.id.clone(),
            owner: source.owner.clone(),
            status,
            groups,
        });
        Ok(())
    }

    fn add_credential(&mut self, index: usize, source: &CredentialSource) -> Result<(), String> {
        match source {
            CredentialSource::Jwt {
                issuer,
                subject,
                certificate_bound,
            } => {
                if !self.issuers.contains(issuer) {
                    return Err(format!("unknown issuer `{issuer}`"));
                }
                if subject.is_empty() {
                    return Err("subject: must not be empty".into());
                }
                let key = (issuer.clone(), subject.clone());
                if self
                    .by_subject
                    .insert(key, (index, *certificate_bound))
                    .is_some()
                {
                    return Err(format!(
                        "issuer `{issuer}` subject `{subject}` already proves another identity"
                    ));
                }
            }
            CredentialSource::Spiffe { id } => {
                let spiffe = SpiffeId::parse(id).map_err(|e| format!("spiffe id `{id}`: {e}"))?;
                if !self
                    .trust_domains
                    .iter()
                    .any(|d| d == spiffe.trust_domain())
                {
                    return Err(format!(
                        "spiffe id `{id}`: trust domain `{}` is not listed under `mtls`",
                        spiffe.trust_domain()
                    ));
                }
                if self.by_spiffe.insert(id.clone(), index).is_some() {
                    return Err(format!("spiffe id `{id}` already proves another identity"));
                }
            }
            CredentialSource::ApiKey { key_id, sha256 } => {
                crate::verify::apikey::check_key_id(key_id)?;
                let hash = parse_sha256(sha256)?;
                if self
                    .by_key_id
                    .insert(key_id.clone(), (index, hash))
                    .is_some()
                {
                    return Err(format!(
                        "api key id `{key_id}` already proves another identity"
                    ));
                }
            }
        }
        Ok(())
    }

    fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    /// The policy's revision label.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// The compiled token issuers.
    pub fn issuers(&self) -> &Issuers {
        &self.issuers
    }

    /// The compiled token issuers, for installing fetched keys.
    pub fn issuers_mut(&mut self) -> &mut Issuers {
        &mut self.issuers
    }

    /// The identity a verified token's issuer and subject prove, if any,
    /// and whether its tokens must be bound to the client certificate.
    pub fn identity_by_subject(&self, issuer: &str, subject: &str) -> Option<(&Identity, bool)> {
        let (index, bound) = self
            .by_subject
            .get(&(issuer.to_owned(), subject.to_owned()))?;
        Some((self.identities.get(*index)?, *bound))
    }

    /// The identity a client certificate's SPIFFE ID proves, if any.
    pub fn identity_by_spiffe(&self, id: &str) -> Option<&Identity> {
        self.identities.get(*self.by_spiffe.get(id)?)
    }

    /// The SPIFFE trust domains whose client certificates are credentials;
    /// empty when client certificates prove nothing by themselves.
    pub fn trust_domains(&self) -> &[String] {
        &self.trust_domains
    }

    /// The identity and stored key hash for an API key id, if any.
    pub fn identity_by_key_id(&self, key_id: &str) -> Option<(&Identity, &[u8; 32])> {
        let (index, hash) = self.by_key_id.get(key_id)?;
        Some((self.identities.get(*index)?, hash))
    }

    /// The groups an identity belongs to, in policy order.
    pub fn groups_of<'a>(&'a self, identity: &'a Identity) -> impl Iterator<Item = &'a Group> {
        identity.groups.iter().filter_map(|&i| self.groups.get(i))
    }
}

fn compile_mtls(source: &PolicySource) -> Result<Vec<String>, PolicyError> {
    let Some(mtls) = &source.mtls else {
        return Ok(Vec::new());
    };
    if mtls.trust_domains.is_empty() {
        return Err(PolicyError(
            "mtls: trust_domains: must list at least one".into(),
        ));
    }
    for domain in &mtls.trust_domains {
        let id = format!("spiffe://{domain}");
        if SpiffeId::parse(&id)
            .ok()
            .is_none_or(|s| s.trust_domain() != domain)
        {
            return Err(PolicyError(format!(
                "mtls: trust domain `{domain}`: must be `[a-z0-9.-_]+`"
            )));
        }
    }
    Ok(mtls.trust_domains.clone())
}

fn compile_grant(source: &GrantSource) -> Result<Grant, String> {
    check_name(&source.name)?;
    if source.methods.is_empty() || source.hosts.is_empty() || source.paths.is_empty() {
        return Err("methods, hosts and paths must each list at least one entry".into());
    }
    let mut methods = Vec::with_capacity(source.methods.len());
    for method in &source.methods {
        let valid =
            method == "*" || (!method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()));
        if !valid {
            return Err(format!(
                "method `{method}`: must be upper-case letters or `*`"
            ));
        }
        methods.push(method.clone());
    }
    let hosts = source
        .hosts
        .iter()
        .map(|h| HostPattern::parse(h).map_err(|e| format!("host `{h}`: {e}")))
        .collect::<Result<_, _>>()?;
    let paths = source
        .paths
        .iter()
        .map(|p| PathPattern::parse(p).map_err(|e| format!("path `{p}`: {e}")))
        .collect::<Result<_, _>>()?;
    Ok(Grant::new(source.name.clone(), methods, hosts, paths))
}

fn compile_status(source: &IdentitySource) -> Result<Status, String> {
    let details = (source.status_reason.as_ref(), source.status_since.as_ref());
    match (source.status, details) {
        (StatusSource::Active, (None, None)) => Ok(Status::Active),
        (StatusSource::Active, _) => {
            Err("status_reason and status_since apply only to `suspended` and `retired`".into())
        }
        (status, (Some(reason), Some(since))) => {
            if reason.trim().is_empty() {
                return Err("status_reason: must not be empty".into());
            }
            check_date(since)?;
            let (reason, since) = (reason.clone(), since.clone());
            Ok(match status {
                StatusSource::Suspended => Status::Suspended { reason, since },
                _ => Status::Retired { reason, since },
            })
        }
        _ => Err("a `suspended` or `retired` identity needs status_reason and status_since".into()),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(format!("name `{name}`: must be 1 to 64 of `[a-z0-9._-]`"))
    }
}

fn check_date(date: &str) -> Result<(), String> {
    let b = date.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shape = b.len() == 10
        && digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10);
    let month = date
        .get(5..7)
        .and_then(|m| m.parse::<u8>().ok())
        .unwrap_or(0);
    let day = date
        .get(8..10)
        .and_then(|d| d.parse::<u8>().ok())
        .unwrap_or(0);
    if shape && (1..=12).contains(&month) && (1..=31).contains(&day) {
        Ok(())
    } else {
        Err(format!(
            "status_since `{date}`: must be a date `YYYY-MM-DD`"
        ))
    }
}

fn parse_sha256(hex: &str) -> Result<[u8; 32], String> {
    let bad = || format!("sha256 `{hex}`: must be 64 lower-case hex digits");
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// `line L column C: message` for a JSON error. serde_json puts the
/// position last; operators look for it first.
pub(crate) fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(at) => text.get(..at).unwrap_or(&text),
        None => &text,
    };
    format!("line {} column {}: {message}", e.line(), e.column())
}

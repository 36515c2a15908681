//! Domain types shared by observe, plan, apply and the CLI.
//!
//! These are fleetform's own words for what the Viam cloud holds (organizations, locations,
//! machines, parts, fragments, invites, logs). They carry no I/O and know nothing of protobuf;
//! `cloud` converts the wire messages into them. Secret values are wrapped in [`Sensitive`] so
//! that a stray `{:?}` can never print them.

mod config_json;
mod desired;
mod observed;
mod rollout;
pub mod rules;

pub use config_json::{Builder as ConfigBuilder, ConfigJson};
pub use desired::{
    Config, Desired, DesiredFragment, DesiredGrant, DesiredInvite, DesiredKey, DesiredLocation,
    DesiredMachine, DesiredMember, DesiredMetadata, DesiredPart, FragmentRef, FragmentUse,
    GrantTarget, Identity, MemberRef, MetadataOwner, OrgRef, OrgSettings, SensitiveValue,
    TagTarget,
};
pub use observed::{Observed, TEMPORARY_SUFFIX, location_paths, temporary_name};
pub use rollout::{Amount, HealthGate, OnAbort, RolloutPolicy};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Serializes an optional timestamp as RFC 3339 text (`2026-05-01T12:00:00Z`) or `null`, for
/// JSON output. [`Timestamp`] itself serializes so; this names the intent at a field. Use
/// with `#[serde(serialize_with = "crate::model::rfc3339")]`.
pub fn rfc3339<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_string()),
        None => s.serialize_none(),
    }
}

/// A point in time as the cloud reports it: seconds and nanoseconds since the Unix epoch (UTC).
///
/// Kept exactly as received so it can be sent back as an optimistic-concurrency precondition
/// (`last_known_update`) and compare equal on the server.
///
/// In JSON (plans, saved plans, every `--output json`) it is RFC 3339 text in UTC, exact to
/// the nanosecond: `2026-05-01T12:00:00Z`, `2026-05-01T12:00:00.123456Z` (microseconds, the
/// cloud's precision) or nine digits when the nanoseconds need them. It reads that form and,
/// for plans saved by earlier versions, the protobuf form `{"seconds": N, "nanos": N}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339_exact())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The protobuf form, as plans saved before RFC 3339 hold it.
        #[derive(Deserialize)]
        struct Proto {
            seconds: i64,
            #[serde(default)]
            nanos: i32,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Proto(Proto),
        }
        match Either::deserialize(d)? {
            Either::Text(t) => Timestamp::parse_rfc3339(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid time {t:?}: expected RFC 3339 in UTC, e.g. 2026-05-01T12:00:00Z"
                ))
            }),
            Either::Proto(p) => Ok(Timestamp {
                seconds: p.seconds,
                nanos: p.nanos,
            }),
        }
    }
}

impl Timestamp {
    /// The current wall-clock time, truncated to microseconds (the precision the cloud stores).
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self::from_micros(d.as_micros() as i64)
    }

    pub fn from_micros(micros: i64) -> Self {
        Timestamp {
            seconds: micros.div_euclid(1_000_000),
            nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
        }
    }

    pub fn as_micros(&self) -> i64 {
        self.seconds * 1_000_000 + i64::from(self.nanos) / 1_000
    }

    /// RFC 3339 in UTC without losing precision: as [`Display`](fmt::Display), with nine
    /// fractional digits when the nanoseconds are not whole microseconds.
    pub fn to_rfc3339_exact(&self) -> String {
        let text = self.to_string();
        if self.nanos % 1_000 == 0 {
            return text;
        }
        let seconds = Timestamp {
            seconds: self.seconds,
            nanos: 0,
        }
        .to_string();
        format!("{}.{:09}Z", seconds.trim_end_matches('Z'), self.nanos)
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.FRACTION]Z` (up to nine fractional digits; `t`, `z` and a
    /// `+00:00` offset are accepted too); `None` for anything else.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let t = text
            .strip_suffix(['Z', 'z'])
            .or_else(|| text.strip_suffix("+00:00"))?;
        let (date, time) = t.split_once(['T', 't'])?;
        let num = |s: &str, len: usize| -> Option<i64> {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let mut d = date.split('-');
        let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
        let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
        let mut h = hms.split(':');
        let (hh, mm, ss) = (num(h.next()?, 2)?, num(h.next()?, 2)?, num(h.next()?, 2)?);
        if d.next().is_some() || h.next().is_some() {
            return None;
        }
        if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
            return None;
        }
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if time.contains('.') && frac.is_empty() {
            return None;
        }
        let nanos = if frac.is_empty() {
            0
        } else {
            frac.parse::<i32>().ok()? * 10_i32.pow(9 - frac.len() as u32)
        };
        let days = days_from_civil(y, m as u32, day as u32);
        Some(Timestamp {
            seconds: days * 86_400 + hh * 3600 + mm * 60 + ss,
            nanos,
        })
    }

    /// Seconds elapsed from `self` until `later` (negative if `later` is earlier).
    pub fn seconds_until(&self, later: Timestamp) -> i64 {
        later.seconds - self.seconds
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, e.g. `2026-11-25T19:22:26.123456Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.seconds.div_euclid(86_400);
        let secs = self.seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )?;
        if self.nanos != 0 {
            write!(f, ".{:06}", self.nanos / 1_000)?;
        }
        f.write_str("Z")
    }
}

/// A proleptic Gregorian (year, month, day) to days since 1970-01-01; the inverse of
/// [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A value that must never be shown: location secrets, part secrets, API keys.
///
/// `Debug` and `Display` print `(sensitive)`; the value is reachable only through
/// [`Sensitive::expose`], which makes every place that reveals it easy to find.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Sensitive(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

impl fmt::Display for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub public_namespace: String,
    /// The region new resources of the organization are placed in (empty when not said).
    #[serde(default)]
    pub default_region: String,
    pub created_on: Option<Timestamp>,
    /// The fragments every machine of the organization imports (`None` when the cloud does not
    /// say, which is not the same as an empty list).
    #[serde(default)]
    pub default_fragments: Option<Vec<FragmentImport>>,
}

/// Metadata: the free-form JSON object the cloud keeps on an organization, a location, a
/// machine or a part, for other tools to read. Compared semantically (key order and number
/// spelling never matter).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// Whose metadata, by cloud id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum MetadataTarget {
    Organization(String),
    Location(String),
    Machine(String),
    Part(String),
}

impl MetadataTarget {
    /// The key of this target in [`Observed::metadata`]: `kind:id`.
    pub fn key(&self) -> String {
        let (kind, id) = match self {
            MetadataTarget::Organization(id) => ("organization", id),
            MetadataTarget::Location(id) => ("location", id),
            MetadataTarget::Machine(id) => ("machine", id),
            MetadataTarget::Part(id) => ("part", id),
        };
        format!("{kind}:{id}")
    }
}

/// A role a member of the organization holds (`ListAuthorizations`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRole {
    /// The member's user id.
    pub identity_id: String,
    pub grant: Grant,
}

/// A fragment import in its proto form (`FragmentImport`), as used by an organization's
/// default fragments. (Inside a part config, imports are plain JSON in `fragments`.)
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FragmentImport {
    pub fragment_id: String,
    /// A revision or a tag name; `None` means the latest revision.
    pub version: Option<String>,
    pub prefix: Option<String>,
    /// The deprecated string-only variables.
    pub variables: std::collections::BTreeMap<String, String>,
    /// The variables as a JSON object.
    pub fragment_variables: Option<serde_json::Value>,
}

/// An organization that a location belongs to; the primary one owns it, others have it shared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationOrganization {
    pub organization_id: String,
    pub primary: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub id: String,
    pub name: String,
    /// `None` for a top-level location.
    pub parent_id: Option<String>,
    pub robot_count: i32,
    pub created_on: Option<Timestamp>,
    pub secrets: Vec<LocationSecret>,
    /// The organizations the location belongs to (empty when the cloud does not say).
    #[serde(default)]
    pub organizations: Vec<LocationOrganization>,
}

impl Location {
    /// The id of the organization that owns the location, when the cloud says.
    pub fn primary_organization(&self) -> Option<&str> {
        self.organizations
            .iter()
            .find(|o| o.primary)
            .map(|o| o.organization_id.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationSecret {
    pub id: String,
    pub secret: Sensitive,
    pub created_on: Option<Timestamp>,
    pub enabled: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnlineState {
    #[default]
    Unknown,
    Online,
    Offline,
    AwaitingSetup,
}

/// A machine (a "robot" on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub id: String,
    pub name: String,
    pub location_id: String,
    pub created_on: Option<Timestamp>,
    pub last_access: Option<Timestamp>,
    pub online_state: OnlineState,
}

/// A machine part with its configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub id: String,
    pub name: String,
    pub machine_id: String,
    pub location_id: String,
    pub main: bool,
    /// The part's configuration as a JSON object (`{}` when empty), in compact form: read
    /// once from the cloud's JSON text, compared by digest, parsed again only when shown or
    /// merged (see [`ConfigJson`]).
    pub config: ConfigJson,
    /// Bumped by the cloud on every update; the optimistic-concurrency token.
    pub last_updated: Option<Timestamp>,
    pub created_on: Option<Timestamp>,
    pub last_access: Option<Timestamp>,
    pub online_state: OnlineState,
}

/// One part's liveness, as `ListMachineSummaries` reports it for many machines in one call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSummary {
    pub part_id: String,
    pub part_name: String,
    pub machine_id: String,
    pub machine_name: String,
    pub location_id: String,
    pub online_state: OnlineState,
    /// When the part last reached the cloud (`None`: never).
    pub last_access: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Private,
    Public,
    PublicUnlisted,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fragment {
    pub id: String,
    pub name: String,
    pub organization_id: String,
    pub config: serde_json::Value,
    pub visibility: Visibility,
    /// How many parts reference this fragment.
    pub robot_part_count: i32,
    pub created_on: Option<Timestamp>,
    pub last_updated: Option<Timestamp>,
    /// The current revision (`""` when the cloud does not say).
    #[serde(default)]
    pub revision: String,
}

/// One revision of a fragment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentRevision {
    pub revision: String,
    pub created_at: Option<Timestamp>,
}

/// A named pointer to a fragment revision (e.g. `stable`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentTag {
    pub tag: String,
    pub revision: String,
}

/// A fragment with its revisions and tags (`GetFragment`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FragmentVersions {
    /// The fragment; at the requested version when one was asked for.
    pub fragment: Fragment,
    pub revisions: Vec<FragmentRevision>,
    pub tags: Vec<FragmentTag>,
}

/// How many machines import a fragment at one version (`GetFragmentUsage`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentUsage {
    /// The revision or tag the machines import; `None` = the latest revision.
    pub version: Option<String>,
    pub organizations: i32,
    pub machines: i32,
    pub machines_in_current_org: i32,
}

/// One entry of a fragment's history: one edit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FragmentHistoryEntry {
    pub fragment_id: String,
    /// The revision the edit made (`""` when the cloud does not say).
    pub revision: String,
    pub when: Option<Timestamp>,
    /// The fragment as it was before the edit.
    pub old: Fragment,
    /// The config the edit wrote (`None` when the cloud does not say).
    pub config: Option<serde_json::Value>,
    pub edited_by: Option<Editor>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Operator => "operator",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Organization,
    Location,
    /// A machine; `robot` on the wire.
    Robot,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Organization => "organization",
            ResourceKind::Location => "location",
            ResourceKind::Robot => "robot",
        }
    }
    pub fn parse(s: &str) -> Option<ResourceKind> {
        match s {
            "organization" => Some(ResourceKind::Organization),
            "location" => Some(ResourceKind::Location),
            "robot" => Some(ResourceKind::Robot),
            _ => None,
        }
    }
}

/// A role on one resource, as held by an invite or a member.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    pub resource_kind: ResourceKind,
    pub resource_id: String,
}

/// An API key of the organization (`ListKeys`); the cloud never lists its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub created_on: Option<Timestamp>,
    /// The roles the key holds, sorted.
    pub grants: Vec<Grant>,
}

/// A key's id and secret as `CreateKey` and `RotateKey` return them: the only time the
/// secret is seen. Never serialized, so it cannot reach a saved plan or a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySecret {
    pub id: String,
    pub key: Sensitive,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub email: String,
    pub grants: Vec<Grant>,
    pub created_on: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub emails: Vec<String>,
    pub date_added: Option<Timestamp>,
}

/// Who made a change recorded in a part's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Editor {
    /// `api-key`, `web-oauth`, … (empty when the cloud does not say).
    pub kind: String,
    /// The key id or the user's email.
    pub value: String,
}

/// One entry of a part's history: the part as it was before an edit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub part_id: String,
    pub machine_id: String,
    pub when: Option<Timestamp>,
    pub old: Part,
    pub edited_by: Option<Editor>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub host: String,
    pub level: String,
    pub time: Option<Timestamp>,
    pub logger_name: String,
    pub message: String,
    pub caller: Option<serde_json::Value>,
    pub stack: String,
    pub fields: Vec<serde_json::Value>,
}

/// What to read from a part's log history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Substring the message must contain.
    pub filter: Option<String>,
    /// Levels to include (case-insensitive); empty means all.
    pub levels: Vec<String>,
    pub errors_only: bool,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// Page size wanted; the cloud may cap it.
    pub limit: Option<i64>,
    /// Token from the previous page; `None` for the newest page.
    pub page_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogPage {
    /// Newest first.
    pub entries: Vec<LogEntry>,
    /// `None` when there are no older entries.
    pub next_page_token: Option<String>,
}

/// The longest duration [`parse_duration`] accepts: 100 years. Anything longer is surely a
/// mistake, and every duration fleetform adds to a clock stays far from overflowing.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 86_400);

/// Parses a human duration: a number followed by a unit, `ms`, `s`, `m`, `h` or `d`
/// (`250ms`, `1.5s`, `5m`, `90d`). Several parts may be joined (`1h30m`). Never panics:
/// anything longer than [`MAX_DURATION`] (however many digits) is an error.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    const EXPECTED: &str = "expected e.g. 250ms, 30s, 5m, 2h or 90d";
    // Errors quote at most this much of the input.
    let shown: String = text.chars().take(40).flat_map(char::escape_debug).collect();
    let shown = if text.chars().count() > 40 {
        format!("\"{shown}…\"")
    } else {
        format!("\"{shown}\"")
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty duration; {EXPECTED}"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration {shown}; {EXPECTED}"))?;
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "" => return Err(format!("duration {shown} needs a unit: ms, s, m, h or d")),
            other => {
                let other: String = other
                    .chars()
                    .take(10)
                    .flat_map(char::escape_debug)
                    .collect();
                return Err(format!(
                    "unknown unit \"{other}\" in duration {shown}; use ms, s, m, h or d"
                ));
            }
        };
        total += n * scale;
        if !total.is_finite() || total > MAX_DURATION.as_secs_f64() {
            return Err(format!(
                "duration {shown} is too long; at most 100 years (36500d)"
            ));
        }
        rest = next;
    }
    std::time::Duration::try_from_secs_f64(total)
        .map_err(|_| format!("invalid duration {shown}; {EXPECTED}"))
}

/// [`parse_duration`], then a range check: the duration must lie between `min` and `max`
/// (inclusive, both written as [`parse_duration`] reads them).
pub fn parse_duration_between(
    text: &str,
    min: &str,
    max: &str,
) -> Result<std::time::Duration, String> {
    let d = parse_duration(text)?;
    let lo = parse_duration(min)?;
    let hi = parse_duration(max)?;
    if d < lo || d > hi {
        let shown: String = text
            .trim()
            .chars()
            .take(40)
            .flat_map(char::escape_debug)
            .collect();
        return Err(format!("{shown} is out of range: use {min} to {max}"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_json_is_rfc3339_exact_and_reads_the_protobuf_form_too() {
        for (seconds, nanos, text) in [
            (0, 0, "1970-01-01T00:00:00Z"),
            (1_767_225_600, 0, "2026-01-01T00:00:00Z"),
            (1_795_634_546, 123_456_000, "2026-11-25T19:22:26.123456Z"),
            (1_795_634_546, 123_456_789, "2026-11-25T19:22:26.123456789Z"),
            (951_782_400, 1, "2000-02-29T00:00:00.000000001Z"),
            (-1, 0, "1969-12-31T23:59:59Z"),
        ] {
            let t = Timestamp { seconds, nanos };
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<Timestamp>(&json).unwrap(),
                t,
                "{text}"
            );
            let proto = format!("{{\"seconds\": {seconds}, \"nanos\": {nanos}}}");
            assert_eq!(serde_json::from_str::<Timestamp>(&proto).unwrap(), t);
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2026-01-01T00:00:00.5+00:00"),
            Some(Timestamp {
                seconds: 1_767_225_600,
                nanos: 500_000_000
            })
        );
        for bad in [
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+02:00",
            "2026-1-01T00:00:00Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_none(), "{bad}");
            assert!(serde_json::from_str::<Timestamp>(&format!("\"{bad}\"")).is_err());
        }
    }

    #[test]
    fn timestamp_formats_as_rfc3339() {
        let t = Timestamp {
            seconds: 1_795_634_546,
            nanos: 123_456_000,
        };
        assert_eq!(t.to_string(), "2026-11-25T19:22:26.123456Z");
        assert_eq!(Timestamp::default().to_string(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn timestamp_micros_round_trip() {
        for m in [0, 1, 999_999, 1_000_000, 1_795_634_546_123_456, -1] {
            assert_eq!(Timestamp::from_micros(m).as_micros(), m);
        }
    }

    #[test]
    fn durations_parse() {
        use std::time::Duration;
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit"));
        // Huge values are errors, never panics (issue 13).
        for huge in [
            "99999999999999999999d",
            "36501d",
            "1e400s",
            &"9".repeat(400),
            &format!("{}s", "9".repeat(400)),
            "36500d1ms",
        ] {
            let e = parse_duration(huge).unwrap_err();
            assert!(
                e.contains("too long") || e.contains("unknown unit") || e.contains("needs a unit"),
                "{huge}: {e}"
            );
        }
        assert_eq!(parse_duration("36500d"), Ok(MAX_DURATION));
        assert!(parse_duration("1..5s").is_err());
        let long = format!("{}x", "1".repeat(1000));
        assert!(parse_duration(&long).unwrap_err().len() < 200);
        assert_eq!(
            parse_duration_between("2h", "1s", "1h").unwrap_err(),
            "2h is out of range: use 1s to 1h"
        );
        assert_eq!(
            parse_duration_between("0ms", "0s", "1h"),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            parse_duration_between("1h", "1s", "1h"),
            Ok(Duration::from_secs(3600))
        );
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sensitive_never_prints() {
        let s = Sensitive::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "(sensitive) (sensitive)");
        assert_eq!(s.expose(), "hunter2");
    }
}

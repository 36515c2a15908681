//! The manifest: YAML in, a validated [`Desired`] out, or every problem with its position.
//!
//! # Pipeline
//! 1. `span` parses the text into a position tree (YAML syntax errors stop here): a reader
//!    specialised for the YAML manifests use reads the bytes straight into the tree, and
//!    yaml-rust2 reads anything else and reports every syntax error. A large text is hashed
//!    for the digest on another thread meanwhile. Each clean inline part and fragment config
//!    is written in its final form as soon as its mapping is read, its nodes freed and an
//!    empty mapping left in its place (`span/configs.rs`), so the tree of a large manifest
//!    never holds its configs.
//! 2. The `version` is checked first: only version 1 is understood.
//! 3. `expand` merges `include:`d files and expands `templates:` (with `${var:NAME}`,
//!    `for_each:` inventories and `patch:`) on that tree, into the plain form; every node
//!    keeps its position and `origin` (file, template instance) for diagnostics. An
//!    unpatched instance's clean part configs (see step 6) are built in their final form
//!    straight from the template's nodes, substituting its variables as they are written,
//!    and the instance's tree holds an empty mapping in their place; any other config is
//!    copied, so its diagnostics are found and placed as before.
//! 4. `structure` checks the shape against [`schema()`] on that tree: unknown keys (with the
//!    allowed ones in the hint), missing keys, wrong types, duplicate keys, tags, merge keys
//!    (duplicate, merge and non-scalar keys are noticed while the tree is built; the tree is
//!    walked for them only when there is one).
//!    Every such problem is reported at once; if there are any, validation stops here.
//! 5. `de` fills the `raw` structs (`deny_unknown_fields`) from that same tree: the text is
//!    parsed once. Inline configs are skipped there.
//! 6. `validate` takes the tree; `config` first builds every inline config not built yet
//!    from it, once, freeing each config's subtree as it goes (unless a diagnostic may point
//!    inside it). Then it checks the rules the schema cannot express,
//!    loads `config_file`s, resolves `${env:NAME}` (with `env`), and builds the [`Desired`]
//!    model with its digest.
//!
//! Every [`Diagnostic`] names a file, a 1-based line and column, a message and a hint, and
//! displays as `fleet.yaml:12:9: error: <message>` + `\n  hint: <hint>`. Diagnostics are
//! sorted by position, the manifest's own first. Messages never include environment values.
//!
//! # Semantics (DESIGN.md §4) and the decisions taken where it is silent
//! - Paths: location `HQ/Assembly`, machine `HQ/Assembly/arm-01`, part
//!   `HQ/Assembly/arm-01/arm-01-main`; fragments by name. Names are non-empty, have no `/`
//!   and no surrounding whitespace, and are unique among siblings. Part names are also unique
//!   within a location, because Viam requires it.
//! - Locations nest at most 3 levels. A machine has at least one part; exactly one is
//!   `main: true`, except that a single part is main implicitly (and `main: false` on it is an
//!   error).
//! - `config` or `config_file` (relative to the manifest; `.json` is JSON, `.yaml`/`.yml` is
//!   YAML), not both; neither means `{}`. A config is a JSON object; a part's config may not
//!   hold `fragments` (use the part's `fragments:` list). Problems inside a config file are
//!   reported in that file.
//! - `${env:NAME}` in config string values is replaced and recorded as a
//!   [`SensitiveValue`](crate::model::SensitiveValue); `$${env:NAME}` is a literal.
//! - `id:` pins (location ids are 10 lowercase letters or digits; others are UUIDs, which are
//!   lowercased) may not repeat. `id:` together with `moved_from:` is an error (the id already
//!   keeps the resource). `moved_from` is a full path (a fragment's old name), never the own
//!   path, claimed by one resource only; a part's is in the same machine (under the machine's
//!   path or its `moved_from`).
//! - Invites: emails are lowercased and unique; each has at least one grant; a grant has one
//!   role (`owner`/`operator`) and exactly one target (`organization: true`, or a declared
//!   `location:` / `machine:` path); one grant per target. No `access:` section means invites
//!   are not managed (`invites: None`), nor does an `access:` without `invites:`;
//!   `access: { invites: [] }` manages them as none.
//! - Members (`access: members:`): each named by exactly one of `email` (lowercased) or
//!   `user_id`, at most once; grants as for invites. An empty `grants:` means the member should
//!   hold no role. Without `members:` members' roles are not managed.
//! - `organization`: a UUID is an id ([`OrgRef::Id`](crate::model::OrgRef)), else a name.
//!
//! # Limits (hostile input)
//! A manifest may come from someone else, so reading one is bounded, and every limit gives
//! a positioned diagnostic:
//! - files (the manifest and each config file) up to 64 MiB (`--max-manifest-size`,
//!   `FLEETFORM_MAX_MANIFEST_SIZE`), regular files only, read non-blocking (see `files`);
//! - `config_file` paths relative and inside the root: the checkout in `watch --git` mode
//!   ([`LoadOptions::root`]), else the git work tree holding the manifest, else the current
//!   directory when the manifest is below it, else the manifest's directory; symlinks
//!   resolved;
//! - YAML nests at most 64 levels, uses at most 10,000 aliases, and aliases expand to at most
//!   4 MiB (see `span`); a config nests at most 32 levels (what the wire carries);
//! - names are at most 128 characters, without control or bidirectional-override characters.

mod config;
mod de;
mod env;
mod error;
mod expand;
pub mod export;
mod files;
pub mod from_observed;
mod include;
pub mod layout;
mod origin;
mod raw;
mod schema;
mod span;
mod structure;
mod validate;
pub mod write;

pub use error::{Diagnostic, ManifestError};
pub use files::{DEFAULT_MAX_FILE_BYTES, LoadOptions, read_bounded, set_default_max_file_bytes};
pub use include::{included_files, lenient_top_level_str};
pub use schema::{schema, source_schema};

/// What a registered kind ([`crate::kinds`]) reads, validates and writes its section with.
pub mod section {
    pub use super::from_observed::Importer;
    pub use super::raw::RawGrant;
    pub use super::schema::EMAIL_PATTERN;
    pub use super::span::YPath;
    pub use super::structure::closest;
    pub use super::validate::{SectionValidator, check_name_chars, is_email};
    pub use crate::manifest::export::grant as export_grant;
}

/// The keys of the `access:` section, in the order they are written: `invites`, the
/// registered kinds' sections, `keys`.
fn access_keys() -> Vec<&'static str> {
    std::iter::once("invites")
        .chain(crate::kinds::KINDS.iter().map(|k| k.section()))
        .chain(std::iter::once("keys"))
        .collect()
}

/// Resolves the `${env:NAME}` references of one manifest string (a sensitive value's
/// template); the error names what is missing or malformed, never a value.
pub fn resolve_template(
    template: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    env::resolve_str(template, env)
        .map(|r| r.value)
        .map_err(|problems| {
            problems
                .into_iter()
                .map(|p| match p {
                    env::StrProblem::Missing(name) => {
                        format!("environment variable {name} is not set")
                    }
                    env::StrProblem::Malformed(r) => format!("malformed reference {r}"),
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
}

use crate::model::Desired;
use span::{NodeKind, ScalarKind};
use std::borrow::Cow;
use std::path::Path;

/// Loads the manifest at `path`, resolving `${env:NAME}` from the process environment.
pub fn load(path: &Path) -> Result<Desired, ManifestError> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// Loads the manifest at `path`, resolving `${env:NAME}` with `env`.
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Desired, ManifestError> {
    load_with(path, &LoadOptions::default(), env)
}

/// Loads the manifest at `path` as `opts` says (root, size limit), resolving `${env:NAME}`
/// with `env`. With a root, the manifest itself must be inside it too (`watch --git`: a
/// committed symlink may not point out of the checkout).
pub fn load_with(
    path: &Path,
    opts: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Desired, ManifestError> {
    let unreadable = |message: String| {
        ManifestError::single(Diagnostic::new(
            path,
            1,
            1,
            message,
            "check the path and its permissions; the manifest must be a UTF-8 YAML file",
        ))
    };
    if let Some(root) = &opts.root {
        let inside = files::canonical_root(root)
            .and_then(|root| path.canonicalize().map(|p| p.starts_with(root)));
        match inside {
            Ok(true) => {}
            Ok(false) => {
                return Err(unreadable(
                    "the manifest resolves (through a symlink) to a place outside the repository"
                        .into(),
                ));
            }
            Err(e) => return Err(unreadable(format!("cannot read the manifest: {e}"))),
        }
    }
    let bytes = files::read_bounded(path, opts.max_file_bytes)
        .map_err(|e| unreadable(format!("cannot read the manifest: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| unreadable("cannot read the manifest: not UTF-8 text".into()))?;
    parse_text(Cow::Owned(text), path, opts, env)
}

/// Parses and validates manifest `text`. `file` names it in diagnostics, and relative
/// `config_file` paths are resolved against its directory.
pub fn parse_str(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Desired, ManifestError> {
    parse_str_with(text, file, &LoadOptions::default(), env)
}

/// [`parse_str`] with the root and size limit of `opts` for the config files it includes.
pub fn parse_str_with(
    text: &str,
    file: &Path,
    opts: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Desired, ManifestError> {
    parse_text(Cow::Borrowed(text), file, opts, env)
}

/// From this size on, a manifest's text is hashed (for the digest) on a second thread while
/// it is parsed: below, a thread costs more than it saves.
const PARALLEL_DIGEST_BYTES: usize = 1 << 20;

/// [`parse_str_with`]; an owned text is freed as soon as it is parsed.
fn parse_text(
    text: Cow<'_, str>,
    file: &Path,
    opts: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Desired, ManifestError> {
    // A UTF-8 byte order mark is not content (yaml-rust2 would read it as part of a key).
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let one = |line: usize, column: usize, message: String, hint: &str| {
        ManifestError::single(Diagnostic::new(file, line, column, message, hint))
    };
    // A large text is hashed on another core while it is parsed.
    let (digest, parsed) = if body.len() >= PARALLEL_DIGEST_BYTES {
        std::thread::scope(|s| {
            let digest = s.spawn(|| include::Digester::new(body));
            let parsed = span::parse_manifest(body);
            (digest.join().expect("the digest does not panic"), parsed)
        })
    } else {
        (include::Digester::new(body), span::parse_manifest(body))
    };
    let mut parsed = parsed.map_err(|e| {
        one(
            e.pos.line(),
            e.pos.column(),
            format!("invalid YAML: {}", e.message),
            "check the indentation and quoting here",
        )
    })?;
    drop(text);
    let configs = std::mem::take(&mut parsed.configs);
    let mut docs = parsed.docs.into_iter();
    let root = match (docs.next(), docs.next()) {
        (None, _) => {
            return Err(one(
                1,
                1,
                "the manifest is empty".into(),
                "start with `version: 1` and `organization: <name>`",
            ));
        }
        (Some(root), None) => root,
        (Some(_), Some(second)) => {
            return Err(one(
                second.pos.line(),
                second.pos.column(),
                "the manifest holds more than one YAML document".into(),
                "keep one document per manifest (remove the `---` separator)",
            ));
        }
    };
    if let Some(v) = root.entry("version").map(|e| &e.value)
        && let NodeKind::Scalar { value, .. } = &v.kind
        && v.scalar_kind() == Some(ScalarKind::Int)
        && value.parse::<i64>() != Ok(1)
    {
        return Err(one(
            v.pos.line(),
            v.pos.column(),
            format!("unsupported manifest version {value}"),
            "this fleetform reads version 1 manifests: write `version: 1`",
        ));
    }
    let mut origins = origin::Origins::single(file);
    let mut diags = Vec::new();
    structure::check_parsed_subset(
        &root,
        &parsed.tags,
        parsed.key_problems,
        &origins,
        &mut diags,
    );
    if !diags.is_empty() {
        return Err(ManifestError::sorted(file, diags));
    }
    // The tree moves through expansion: a plain manifest's comes back as it was, uncopied.
    let mut expanded = expand::expand(root, file, opts, &mut origins)
        .map_err(|d| ManifestError::sorted(file, d).collapsed())?;
    expanded.configs.extend(configs);
    let root = &expanded.root;
    structure::check_shape(&schema(), root, &origins, &mut diags);
    if !diags.is_empty() {
        return Err(ManifestError::sorted(file, diags).collapsed());
    }
    let raw: raw::RawManifest = de::from_node(root).map_err(|e| {
        let pos = e.pos.unwrap_or(span::Pos::START);
        ManifestError::single(origins.diag(
            pos,
            e.message,
            "see fleetform.schema.json for the manifest's shape",
        ))
    })?;
    validate::validate(&raw, digest, expanded, &origins, opts, env)
        .map_err(|d| ManifestError::sorted(file, d).collapsed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FragmentUse, GrantTarget};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn errors(text: &str) -> Vec<String> {
        match parse_str(text, Path::new("m.yaml"), &no_env) {
            Ok(d) => panic!("expected errors, got {d:#?}"),
            Err(e) => e.diagnostics.iter().map(ToString::to_string).collect(),
        }
    }

    fn ok(text: &str) -> Desired {
        parse_str(text, Path::new("m.yaml"), &no_env).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_root_must_be_a_mapping() {
        let e = errors("- version: 1\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("m.yaml:1:1: error: the manifest must be a mapping, found a list")
        );
    }

    #[test]
    fn version_must_be_the_number_1() {
        assert!(
            errors("version: \"1\"\norganization: a\n")[0]
                .contains("`version` must be a whole number, found a string")
        );
        assert!(errors("version: 1.0\norganization: a\n")[0].contains("found a number"));
        let e = errors("version: 3\nwhatever: true\n");
        assert_eq!(e.len(), 1, "a newer version is not checked further: {e:#?}");
        assert!(e[0].contains("unsupported manifest version 3"));
    }

    #[test]
    fn numbers_where_strings_belong_suggest_quotes() {
        let e = errors("version: 1\norganization: a\nlocations:\n  - name: 2024\n");
        assert_eq!(
            e,
            [
                "m.yaml:4:11: error: `name` must be a string, found a number\n  hint: quote it to make it a string: `\"2024\"`"
            ]
        );
        let e = errors("version: 1\norganization: a\nfragments:\n");
        assert!(e[0].contains("`fragments` must be a list, found an empty value"));
        assert!(e[0].contains("write `fragments: []` for none"));
        let e = errors("version: 1\norganization: a\naccess: {members: 3}\n");
        assert!(e[0].contains("`members` must be a list"), "{e:?}");
        // An empty `access:` manages neither invites nor members.
        let d = ok("version: 1\norganization: a\naccess: {}\n");
        assert_eq!(
            (&d.invites, crate::kinds::members::declared(&d)),
            (&None, None)
        );
    }

    #[test]
    fn members_are_named_once_by_email_or_user_id_with_invite_grants() {
        use crate::kinds::members;
        use crate::model::{DesiredGrant, DesiredMember, MemberRef, Role};
        let d = ok("version: 1
organization: a
locations: [{name: HQ}]
access:
  members:
    - email: Lead@Acme.Example
      protect: true
      grants: [{role: owner, organization: true}]
    - user_id: user-2
      grants: [{role: operator, location: HQ}]
    - user_id: user-3
");
        assert_eq!(d.invites, None, "invites unmanaged without `invites:`");
        assert_eq!(
            members::declared(&d).unwrap(),
            [
                DesiredMember {
                    who: MemberRef::Email("lead@acme.example".into()),
                    grants: vec![DesiredGrant {
                        role: Role::Owner,
                        target: GrantTarget::Organization
                    }],
                    protect: true,
                },
                DesiredMember {
                    who: MemberRef::UserId("user-2".into()),
                    grants: vec![DesiredGrant {
                        role: Role::Operator,
                        target: GrantTarget::Location("HQ".into())
                    }],
                    protect: false,
                },
                DesiredMember {
                    who: MemberRef::UserId("user-3".into()),
                    grants: vec![],
                    protect: false,
                },
            ]
        );
        let e = errors(
            "version: 1
organization: a
access:
  members:
    - email: a@b.example
    - email: A@b.example
    - {email: c@d.example, user_id: u}
    - grants: []
    - email: not-an-email
    - user_id: u9
      grants: [{role: king, organization: true}, {role: operator, location: Nowhere}]
",
        );
        let want = [
            "duplicate member `a@b.example`",
            "member has both `email` and `user_id`",
            "member has neither `email` nor `user_id`",
            "`not-an-email` is not a valid email address",
            "unknown role `king`",
            "grant on undeclared location `Nowhere`",
        ];
        for w in want {
            assert!(e.iter().any(|m| m.contains(w)), "{w}: {e:#?}");
        }
    }

    #[test]
    fn anchors_and_aliases_share_config() {
        let d = ok("version: 1
organization: a
locations:
  - name: Lab
    machines:
      - name: r1
        parts:
          - name: r1-main
            config: &rover { components: [{ name: base, api: rdk:component:base }] }
      - name: r2
        parts:
          - name: r2-main
            config: *rover
");
        let ms = &d.locations[0].machines;
        assert_eq!(ms[0].parts[0].config, ms[1].parts[0].config);
        assert!(ms[0].parts[0].main);
    }

    #[test]
    fn a_full_valid_manifest_builds_the_model() {
        let d = ok("version: 1
organization: Acme Robotics
prune: true
fragments:
  - name: kit
    id: 1B4E28BA-2FA1-11D2-883F-0016D3CCA427
    protect: true
  - name: kit-v2
    moved_from: kit-old
locations:
  - name: Zürich
    id: abcde12345
    locations:
      - name: Hall 1
        moved_from: Zürich/Halle-1
        machines:
          - name: arm
            moved_from: Zürich/old-arm
            parts:
              - name: arm-cam
                moved_from: Zürich/old-arm/cam
              - name: arm-main
                main: true
                fragments: [kit, kit-v2]
                ignore: [/components/0/attributes/calibration, /a~1b]
access:
  invites:
    - email: Ops@Acme.Example
      protect: true
      grants:
        - { role: operator, location: Zürich/Hall 1 }
        - { role: owner, machine: Zürich/Hall 1/arm }
        - { role: operator, organization: true }
");
        assert_eq!(
            d.organization,
            crate::model::OrgRef::Name("Acme Robotics".into())
        );
        assert!(d.prune);
        assert_eq!(
            d.fragments[0].identity.id.as_deref(),
            Some("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
        );
        assert!(d.fragments[0].identity.protect);
        assert_eq!(
            d.fragments[1].identity.moved_from.as_deref(),
            Some("kit-old")
        );
        assert_eq!(d.fragments[0].config.value(), serde_json::json!({}));
        let hall = &d.locations[0].locations[0];
        assert_eq!(hall.path, "Zürich/Hall 1");
        assert_eq!(d.locations[0].identity.id.as_deref(), Some("abcde12345"));
        let arm = &hall.machines[0];
        assert_eq!(arm.path, "Zürich/Hall 1/arm");
        assert_eq!(
            arm.parts[0].identity.moved_from.as_deref(),
            Some("Zürich/old-arm/cam")
        );
        assert!(!arm.parts[0].main && arm.parts[1].main);
        assert_eq!(arm.parts[1].path, "Zürich/Hall 1/arm/arm-main");
        assert_eq!(
            arm.parts[1].fragments,
            [FragmentUse::named("kit"), FragmentUse::named("kit-v2")]
        );
        let invites = d.invites.as_ref().expect("invites");
        assert_eq!(invites[0].email, "ops@acme.example");
        assert!(invites[0].protect);
        assert_eq!(
            invites[0]
                .grants
                .iter()
                .map(|g| g.target.clone())
                .collect::<Vec<_>>(),
            [
                GrantTarget::Location("Zürich/Hall 1".into()),
                GrantTarget::Machine("Zürich/Hall 1/arm".into()),
                GrantTarget::Organization,
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_found_in_small_and_large_mappings() {
        for n in [3, 40] {
            let keys: String = (0..n).map(|i| format!("k{i}: 1, ")).collect();
            let text = format!(
                "version: 1\norganization: a\nfragments:\n  - name: f\n    config: {{ {keys}k1: 2 }}\n"
            );
            let e = errors(&text);
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(
                e[0].contains("duplicate key `k1` (first at line 5)"),
                "{n}: {e:?}"
            );
        }
    }

    #[test]
    fn syntax_errors_are_reported_alone() {
        let e = errors("version: 1\norganization: [a\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("m.yaml:3:1: error: invalid YAML"), "{e:?}");
    }

    #[test]
    fn crlf_line_endings_keep_positions() {
        let e = errors(
            "version: 1\r\norganization: a\r\nlocations:\r\n  - name: HQ\r\n    machnes: []\r\n",
        );
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("m.yaml:5:5: error: unknown key `machnes`"),
            "{e:?}"
        );
        let d = ok("\u{feff}version: 1\r\norganization: a\r\n");
        assert_eq!(d.organization, crate::model::OrgRef::Name("a".into()));
    }

    #[test]
    fn fragment_imports_tags_default_fragments_and_invites() {
        use crate::model::{FragmentRef, Role, TagTarget};
        let d = ok(r#"version: 1
organization:
  name: acme
  default_fragments: [kit, { id: 1B4E28BA-2FA1-11D2-883F-0016D3CCA427, version: stable }]
fragments:
  - name: kit
    tags: { stable: 3, beta: current }
locations:
  - name: HQ
    machines:
      - name: arm
        parts:
          - name: arm-main
            fragments:
              - kit
              - { name: kit, prefix: rear, version: 2, variables: { port: /dev/ttyUSB1 }, enabled: true }
access:
  invites:
    - email: ops@acme.example
      send_email: false
"#);
        assert_eq!(d.organization, crate::model::OrgRef::Name("acme".into()));
        let defaults = d.default_fragments.as_ref().expect("managed");
        assert_eq!(defaults[0], FragmentUse::named("kit"));
        assert_eq!(
            defaults[1].fragment,
            FragmentRef::Id("1b4e28ba-2fa1-11d2-883f-0016d3cca427".into())
        );
        assert_eq!(defaults[1].version(), Some("stable"));
        assert_eq!(
            d.fragments[0].tags,
            Some(vec![
                ("stable".into(), TagTarget::Revision("3".into())),
                ("beta".into(), TagTarget::Current),
            ])
        );
        let uses = &d.locations[0].machines[0].parts[0].fragments;
        assert_eq!(uses[0], FragmentUse::named("kit"));
        // Options as written, in order; a numeric version is the revision's name.
        let keys: Vec<&str> = uses[1].options.keys().map(String::as_str).collect();
        assert_eq!(keys, ["prefix", "version", "variables", "enabled"]);
        assert_eq!(uses[1].version(), Some("2"));
        let invite = &d.invites.as_ref().unwrap()[0];
        assert!(!invite.send_email);
        assert_eq!(
            invite.grants.len(),
            1,
            "no grants: owner of the organization"
        );
        assert_eq!(invite.grants[0].role, Role::Owner);
        assert_eq!(invite.grants[0].target, GrantTarget::Organization);
    }
}

//! The manifest's JSON Schema (draft 2020-12).
//!
//! [`schema()`] is the single description of the manifest's shape: editors use it (through
//! the `# yaml-language-server: $schema=…` comment and the committed
//! `fleetform.schema.json`), and the structural pass in `structure` walks it to report
//! unknown keys, missing keys and wrong types with positions. Rules a schema cannot say well
//! (unique names, one main part, declared references) are checked in `validate`.

use serde_json::{Value, json};

/// A name: non-empty, no `/`, no leading or trailing whitespace.
pub(crate) const NAME_PATTERN: &str = r"^[^/\s](?:[^/]*[^/\s])?$";
/// A name path such as `HQ/Assembly/arm-01`.
const PATH_PATTERN: &str = r"^[^/\s](?:[^/]*[^/\s])?(?:/[^/\s](?:[^/]*[^/\s])?)*$";
/// A UUID in its 8-4-4-4-12 form.
const UUID_PATTERN: &str =
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
/// A location id: 10 lowercase letters or digits.
const LOCATION_ID_PATTERN: &str = r"^[a-z0-9]{10}$";
/// A non-empty RFC 6901 JSON pointer.
const POINTER_PATTERN: &str = r"^(?:/(?:[^~/]|~[01])*)+$";
pub const EMAIL_PATTERN: &str = r"^[^@\s]+@[^@\s]+\.[^@\s]+$";
const DURATION_PATTERN: &str = r"^(?:[0-9]*\.?[0-9]+(?:ms|s|m|h|d))+$";
const CONFIG_FILE_PATTERN: &str = r"\.(?:json|ya?ml)$";

/// The JSON Schema (draft 2020-12) of a version 1 manifest.
///
/// Every object has `additionalProperties: false` except configs, which are free-form Viam
/// configs. The committed `fleetform.schema.json` at the repository root is this value,
/// pretty-printed; a test keeps the two equal.
pub fn schema() -> Value {
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "manifest",
        "description": "A fleetform manifest (version 1): the locations, machines, parts, part configs, fragments and access grants a Viam organization should have. fleetform plan shows how the cloud differs; fleetform apply makes it match.",
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "organization"],
        "properties": {
            "version": {
                "description": "The manifest format version. Always 1.",
                "type": "integer",
                "const": 1
            },
            "organization": {
                "description": "The organization to manage: its name, or its id (a UUID), which the API key must be able to see. Written as a mapping, it also manages organization settings: `{name: acme, default_fragments: [...], metadata: {...}}`.",
                "anyOf": [
                    { "type": "string", "minLength": 1 },
                    { "$ref": "#/$defs/organization" }
                ]
            },
            "prune": {
                "description": "Delete undeclared locations, machines and parts inside declared locations. When false (the default) they are listed as unmanaged and kept.",
                "type": "boolean",
                "default": false
            },
            "fragments": {
                "description": "Fragments: reusable configs that parts include by name. Names are unique.",
                "type": "array",
                "items": { "$ref": "#/$defs/fragment" }
            },
            "locations": {
                "description": "Top-level locations. Declared locations and everything inside them are managed; Viam allows 3 levels of nesting in all.",
                "type": "array",
                "items": { "$ref": "#/$defs/location" }
            },
            "access": {
                "description": "Organization invites and members, and the roles they grant. Without this section neither is managed.",
                "$ref": "#/$defs/access"
            },
            "rollout": {
                "description": "Roll part updates and fragment tag moves out in waves with health gates, stopping and rolling back on their own. Without this section every change is applied at once.",
                "$ref": "#/$defs/rollout"
            }
        }
    });
    let mut defs = serde_json::Map::new();
    defs.insert(
        "name".into(),
        json!({
            "description": "A name: non-empty, without `/` and without leading or trailing whitespace.",
            "type": "string",
            "pattern": NAME_PATTERN
        }),
    );
    defs.insert(
        "uuid".into(),
        json!({
            "description": "A cloud id pin (a UUID such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427). Pinning keeps the resource across renames and moves.",
            "type": "string",
            "pattern": UUID_PATTERN
        }),
    );
    defs.insert(
        "protect".into(),
        json!({
            "description": "Refuse any plan that would delete this resource.",
            "type": "boolean",
            "default": false
        }),
    );
    defs.insert(
        "config".into(),
        json!({
            "description": "A Viam config object (components, services, modules, …), written inline. `${env:NAME}` inside string values is replaced by the environment variable NAME and treated as sensitive; `$${env:NAME}` is a literal `${env:NAME}`.",
            "type": "object"
        }),
    );
    defs.insert(
        "part_config".into(),
        json!({
            "description": "The part's Viam config object (components, services, modules, …), written inline. List fragments in the part's `fragments:` key, not here. `${env:NAME}` inside string values is replaced by the environment variable NAME and treated as sensitive; `$${env:NAME}` is a literal `${env:NAME}`.",
            "type": "object",
            "not": { "required": ["fragments"] }
        }),
    );
    defs.insert(
        "metadata".into(),
        json!({
            "description": "Free-form metadata (a mapping) that other tools read, stored by the cloud. Compared semantically: key order and number spelling never matter. Without this key the metadata is not managed; `{}` means it must be empty. Written as is: `${env:NAME}` is not substituted here.",
            "type": "object"
        }),
    );
    defs.insert(
        "config_file".into(),
        json!({
            "description": "A file holding the config object, relative to the manifest: JSON (.json) or YAML (.yaml, .yml). Use either `config` or `config_file`.",
            "type": "string",
            "pattern": CONFIG_FILE_PATTERN
        }),
    );
    defs.insert(
        "organization".into(),
        json!({
            "title": "organization",
            "description": "The organization and the settings fleetform manages.",
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": { "description": "The organization's name, or its id (a UUID). With `id:`, the name the organization should have (a rename).", "type": "string", "minLength": 1 },
                "id": { "description": "Find the organization by its id (a UUID); `name:` is then managed: a different name renames it.", "$ref": "#/$defs/uuid" },
                "public_namespace": {
                    "description": "The organization's public namespace (lowercase letters, digits and dashes). Viam lets it be set once. Without this key it is not managed.",
                    "type": "string",
                    "pattern": "^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"
                },
                "region": { "description": "The organization's default region (e.g. `us-east-1`; the local cloud has only `local`). Without this key it is not managed.", "type": "string", "minLength": 1 },
                "metadata": { "$ref": "#/$defs/metadata" },
                "default_fragments": {
                    "description": "Fragments every machine of the organization imports (Viam's organization default fragments), in order; each a fragment name or an import mapping like a part's `fragments:` entries. Without this key they are not managed.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/fragment_import" }
                }
            }
        }),
    );
    defs.insert(
        "fragment_import".into(),
        json!({
            "description": "A fragment import: the name of a declared fragment, or a mapping `{name: camera-kit, version: stable, prefix: front, variables: {...}}` (`id:` instead of `name:` imports a fragment the manifest does not declare, e.g. a public one).",
            "anyOf": [
                { "$ref": "#/$defs/name" },
                { "$ref": "#/$defs/fragment_import_options" }
            ]
        }),
    );
    defs.insert(
        "fragment_import_options".into(),
        json!({
            "title": "fragment import",
            "description": "How a fragment is imported. Exactly one of `name` and `id`. Keys not listed here are written into the config's import entry exactly as given.",
            "type": "object",
            "additionalProperties": true,
            "properties": {
                "name": { "description": "A fragment declared in this manifest.", "$ref": "#/$defs/name" },
                "id": { "description": "A fragment's id (a UUID), for a fragment the manifest does not declare.", "$ref": "#/$defs/uuid" },
                "version": {
                    "description": "Pin to a revision (e.g. `\"3\"`) or a tag (e.g. `stable`). Without it the part takes the fragment's latest revision.",
                    "anyOf": [ { "type": "string", "minLength": 1 }, { "type": "integer" } ]
                },
                "prefix": { "description": "A prefix Viam adds to the names of the resources the fragment brings.", "type": "string" },
                "variables": { "description": "Values for the fragment's variables.", "type": "object" }
            }
        }),
    );
    defs.insert(
        "fragment".into(),
        json!({
            "title": "fragment",
            "description": "A fragment owned by the organization.",
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "not": { "required": ["config", "config_file"] },
            "properties": {
                "name": { "description": "The fragment's name, unique among fragments. Parts refer to it by this name.", "$ref": "#/$defs/name" },
                "id": { "description": "Pin to an existing fragment's id (a UUID): the fragment keeps its id when renamed.", "$ref": "#/$defs/uuid" },
                "moved_from": { "description": "The fragment's previous name, to rename it in place instead of deleting and recreating it.", "$ref": "#/$defs/name" },
                "protect": { "$ref": "#/$defs/protect" },
                "visibility": {
                    "description": "Who can see the fragment (default private).",
                    "enum": ["private", "public", "public_unlisted"],
                    "default": "private"
                },
                "config": { "$ref": "#/$defs/config" },
                "config_file": { "$ref": "#/$defs/config_file" },
                "tags": {
                    "description": "The fragment's tags, e.g. `{stable: 3, beta: current}`: each points at a revision, or at `current`, the revision this apply leaves the fragment at. Parts pinned to a tag (`version: stable`) take the revision it points at. Without this key tags are not managed.",
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [ { "type": "string", "minLength": 1 }, { "type": "integer" } ]
                    }
                }
            }
        }),
    );
    defs.insert(
        "location".into(),
        json!({
            "title": "location",
            "description": "A location. Its path is its name prefixed by its parents' names, e.g. `HQ/Assembly`.",
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": { "description": "The location's name, unique among its siblings.", "$ref": "#/$defs/name" },
                "id": {
                    "description": "Pin to an existing location's id (10 lowercase letters or digits): the location keeps its id when renamed or moved.",
                    "type": "string",
                    "pattern": LOCATION_ID_PATTERN
                },
                "moved_from": {
                    "description": "The location's previous path (e.g. `HQ/Old-Name`), to rename or move it instead of deleting and recreating it.",
                    "type": "string",
                    "pattern": PATH_PATTERN
                },
                "protect": { "$ref": "#/$defs/protect" },
                "metadata": { "$ref": "#/$defs/metadata" },
                "secrets": { "$ref": "#/$defs/secrets" },
                "locations": {
                    "description": "Child locations (Viam allows 3 levels in all).",
                    "type": "array",
                    "items": { "$ref": "#/$defs/location" }
                },
                "machines": {
                    "description": "Machines in this location. Names are unique within the location.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/machine" }
                }
            }
        }),
    );
    defs.insert(
        "amount".into(),
        json!({
            "description": "A number of machines (1 or more), or a percentage such as `25%`.",
            "anyOf": [
                { "type": "integer", "minimum": 1 },
                { "type": "string", "pattern": "^\\s*([1-9][0-9]?|100)\\s*%\\s*$" }
            ]
        }),
    );
    defs.insert(
        "rollout".into(),
        json!({
            "title": "rollout policy",
            "description": "How the part updates of an apply (config changes, fragment import versions) and fragment tag moves reach the fleet: in waves, each gated on the health of its machines.",
            "type": "object",
            "additionalProperties": false,
            "required": ["waves"],
            "properties": {
                "waves": {
                    "description": "Machines changed by the end of each wave, cumulative, in a stable order (by path, `order` locations first), e.g. `[1, 5%, 25%, 100%]`. The last wave takes every machine left.",
                    "type": "array",
                    "minItems": 1,
                    "items": { "$ref": "#/$defs/amount" }
                },
                "order": {
                    "description": "Declared location paths whose machines go first, in this order.",
                    "type": "array",
                    "items": { "type": "string" }
                },
                "wait": {
                    "description": "Soak time after each wave before the next (default 0s); machines that turn unhealthy meanwhile count against the wave.",
                    "type": "string",
                    "pattern": DURATION_PATTERN
                },
                "healthy_when": {
                    "description": "When a machine counts as healthy after its change.",
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "online_within": {
                            "description": "It must reach the cloud (online, last access after the write) within this (default 2m).",
                            "type": "string",
                            "pattern": DURATION_PATTERN
                        },
                        "max_error_logs": {
                            "description": "At most this many error log entries since the write (default 0).",
                            "type": "integer",
                            "minimum": 0
                        }
                    }
                },
                "abort_when": {
                    "description": "When a wave aborts the rollout.",
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["unhealthy"],
                    "properties": {
                        "unhealthy": {
                            "description": "Unhealthy machines in one wave, a count or a percentage of the wave (default 1).",
                            "$ref": "#/$defs/amount"
                        }
                    }
                },
                "on_abort": {
                    "description": "`rollback` (default): put every machine the rollout changed back on its previous config, verified by reading back. `stop`: leave them and start no further wave.",
                    "enum": ["rollback", "stop"]
                }
            }
        }),
    );
    defs.insert(
        "secrets".into(),
        json!({
            "title": "secrets policy",
            "description": "How the location's secret is managed.",
            "type": "object",
            "additionalProperties": false,
            "required": ["rotate_after"],
            "properties": {
                "rotate_after": {
                    "description": "Rotate the location secret when the newest one is older than this, e.g. `90d` (units ms, s, m, h, d).",
                    "type": "string",
                    "pattern": DURATION_PATTERN
                }
            }
        }),
    );
    defs.insert(
        "machine".into(),
        json!({
            "title": "machine",
            "description": "A machine (robot). Its path is its location's path and its name, e.g. `HQ/Assembly/arm-01`.",
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "parts"],
            "properties": {
                "name": { "description": "The machine's name, unique within its location.", "$ref": "#/$defs/name" },
                "id": { "description": "Pin to an existing machine's id (a UUID): the machine keeps its id when renamed or moved.", "$ref": "#/$defs/uuid" },
                "moved_from": {
                    "description": "The machine's previous path (e.g. `HQ/Assembly/arm-00`), to rename or move it instead of deleting and recreating it.",
                    "type": "string",
                    "pattern": PATH_PATTERN
                },
                "protect": { "$ref": "#/$defs/protect" },
                "metadata": { "$ref": "#/$defs/metadata" },
                "parts": {
                    "description": "The machine's parts: at least one, because a machine always has a main part. Exactly one is `main: true`; a single part is main implicitly.",
                    "type": "array",
                    "minItems": 1,
                    "items": { "$ref": "#/$defs/part" }
                }
            }
        }),
    );
    defs.insert(
        "part".into(),
        json!({
            "title": "part",
            "description": "A machine part and its config. Its path is the machine's path and its name, e.g. `HQ/Assembly/arm-01/arm-01-main`.",
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "not": { "required": ["config", "config_file"] },
            "properties": {
                "name": { "description": "The part's name, unique within its machine (Viam also requires part names to be unique within a location).", "$ref": "#/$defs/name" },
                "id": { "description": "Pin to an existing part's id (a UUID): the part keeps its id when renamed.", "$ref": "#/$defs/uuid" },
                "moved_from": {
                    "description": "The part's previous path in the same machine (e.g. `HQ/Assembly/arm-01/old-name`), to rename it in place. Parts cannot move between machines.",
                    "type": "string",
                    "pattern": PATH_PATTERN
                },
                "protect": { "$ref": "#/$defs/protect" },
                "metadata": { "$ref": "#/$defs/metadata" },
                "main": {
                    "description": "Whether this is the machine's main part. Exactly one part per machine is main; a single part is main implicitly.",
                    "type": "boolean"
                },
                "fragments": {
                    "description": "The fragments this part imports, in order: each a declared fragment's name, or a mapping such as `{name: camera-kit, version: stable, prefix: front}`.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/fragment_import" }
                },
                "config": { "$ref": "#/$defs/part_config" },
                "config_file": { "$ref": "#/$defs/config_file" },
                "ignore": {
                    "description": "JSON pointers (RFC 6901) into the config that fleetform neither compares nor overwrites, e.g. `/components/0/attributes/calibration`.",
                    "type": "array",
                    "items": { "type": "string", "pattern": POINTER_PATTERN }
                }
            }
        }),
    );
    defs.insert(
        "access".into(),
        json!({
            "title": "access section",
            "description": "Organization invites and members, and the roles they grant.",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "invites": {
                    "description": "Invitations to join the organization, one per email. Absent: pending invites are not managed; `[]` manages them as none.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/invite" }
                },
                "keys": {
                    "description": "API keys of the organization, by name, and the roles each should hold. Absent: API keys are not managed. A new key's id and secret are written once to a file (`--keys-out`), never to the manifest or the plan; keys not listed are kept unless `prune: true`. The key fleetform runs with is never deleted or given fewer roles.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/key" }
                }
            }
        }),
    );
    defs.insert(
        "key".into(),
        json!({
            "title": "API key",
            "description": "An API key, named uniquely in the organization, and every role it should hold.",
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "grants"],
            "properties": {
                "name": {
                    "description": "The key's name (unique among the organization's keys; how the manifest finds the key).",
                    "type": "string",
                    "minLength": 1
                },
                "grants": {
                    "description": "Every role the key should hold, one per target (at least one). Roles the key holds on other targets are removed.",
                    "type": "array",
                    "minItems": 1,
                    "items": { "$ref": "#/$defs/grant" }
                },
                "moved_from": {
                    "description": "The name the key had before: it is renamed, keeping its id and secret.",
                    "type": "string",
                    "minLength": 1
                },
                "protect": {
                    "description": "Refuse any plan that would delete the key or take a role from it.",
                    "type": "boolean"
                }
            }
        }),
    );
    // The registered kinds: their sections under `access:` (after `invites`) and their
    // definitions.
    for kind in crate::kinds::KINDS {
        let (section, kind_defs) = kind.schema();
        if let Some(Value::Object(props)) =
            defs.get_mut("access").and_then(|a| a.get_mut("properties"))
        {
            let at = props
                .keys()
                .position(|k| k == "invites")
                .map_or(0, |i| i + 1);
            props.shift_insert(at, kind.section().into(), section);
        }
        for (name, def) in kind_defs {
            defs.insert(name.into(), def);
        }
    }
    defs.insert(
        "invite".into(),
        json!({
            "title": "invite",
            "description": "An invitation to join the organization.",
            "type": "object",
            "additionalProperties": false,
            "required": ["email"],
            "properties": {
                "email": {
                    "description": "Who is invited (compared case-insensitively). One invite per email.",
                    "type": "string",
                    "format": "email",
                    "pattern": EMAIL_PATTERN
                },
                "grants": {
                    "description": "The roles the invite grants, one per target. Without grants the invite makes its recipient an owner of the organization, as the Viam cloud does.",
                    "type": "array",
                    "items": { "$ref": "#/$defs/grant" }
                },
                "protect": { "$ref": "#/$defs/protect" },
                "send_email": {
                    "description": "Whether the cloud emails the invitation (default true).",
                    "type": "boolean",
                    "default": true
                }
            }
        }),
    );
    defs.insert(
        "grant".into(),
        json!({
            "title": "grant",
            "description": "A role on exactly one target: the organization, a declared location, or a declared machine.",
            "type": "object",
            "additionalProperties": false,
            "required": ["role"],
            "oneOf": [
                { "required": ["organization"] },
                { "required": ["location"] },
                { "required": ["machine"] }
            ],
            "properties": {
                "role": {
                    "description": "`owner` (full control) or `operator` (operate machines).",
                    "enum": ["owner", "operator"]
                },
                "organization": {
                    "description": "`true`: the role applies to the whole organization.",
                    "const": true
                },
                "location": {
                    "description": "The path of a location declared in this manifest, e.g. `HQ/Assembly`.",
                    "type": "string",
                    "pattern": PATH_PATTERN
                },
                "machine": {
                    "description": "The path of a machine declared in this manifest, e.g. `HQ/Assembly/arm-01`.",
                    "type": "string",
                    "pattern": PATH_PATTERN
                }
            }
        }),
    );
    if let Some(obj) = root.as_object_mut() {
        obj.insert("$defs".into(), Value::Object(defs));
    }
    root
}

/// The JSON Schema of manifests as people write them (see the module docs): [`schema()`] with
/// includes, templates and templated machines, for editors and `fleetform schema`.
pub fn source_schema() -> Value {
    let mut root = schema();
    let Some(obj) = root.as_object_mut() else {
        return root;
    };
    obj.insert(
        "description".into(),
        json!("A fleetform manifest (version 1), or a file it includes: the locations, machines, parts, part configs, fragments and access grants a Viam organization should have. `version` and `organization` are required in the main manifest; an included file may leave them out or repeat them."),
    );
    obj.shift_remove("required");
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "include".into(),
            json!({
                "description": "More manifest files, as paths or globs (`*`, `?` within one path component) relative to this file. Their fragments, templates, locations and invites merge in; a location declared twice is an error.",
                "type": "array",
                "items": { "type": "string", "minLength": 1 }
            }),
        );
        props.insert(
            "templates".into(),
            json!({
                "description": "Machine templates: machines name one with `template:` and give its `${var:NAME}` values in `vars:` or one row each of a `for_each:` inventory.",
                "type": "array",
                "items": { "$ref": "#/$defs/template" }
            }),
        );
    }
    let Some(defs) = obj.get_mut("$defs").and_then(Value::as_object_mut) else {
        return root;
    };
    defs.insert(
        "template".into(),
        json!({
            "title": "template",
            "description": "A machine template. `${var:NAME}` in its strings, configs and config files is replaced per machine; `${var:name}` (the machine's name) and `${var:location}` (its location path) are always defined.",
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "parts"],
            "properties": {
                "name": { "description": "The template's name, unique among templates.", "$ref": "#/$defs/name" },
                "vars": { "$ref": "#/$defs/vars" },
                "protect": { "$ref": "#/$defs/protect" },
                "parts": {
                    "description": "The parts every machine of the template has, as in a machine's `parts:`.",
                    "type": "array",
                    "minItems": 1,
                    "items": { "$ref": "#/$defs/part" }
                }
            }
        }),
    );
    defs.insert(
        "vars".into(),
        json!({
            "description": "Values of `${var:NAME}` references (strings, numbers or booleans).",
            "type": "object",
            "additionalProperties": { "type": ["string", "number", "boolean"] }
        }),
    );
    if let Some(machine) = defs.get_mut("machine").and_then(Value::as_object_mut) {
        machine.shift_remove("required");
        machine.insert(
            "anyOf".into(),
            json!([
                { "required": ["name", "parts"] },
                { "required": ["template", "name"] },
                { "required": ["template", "for_each"] }
            ]),
        );
        if let Some(props) = machine.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert(
                "template".into(),
                json!({ "description": "Make this machine (or one per `for_each` row) from the named template; its parts come from the template.", "$ref": "#/$defs/name" }),
            );
            props.insert("vars".into(), json!({ "$ref": "#/$defs/vars" }));
            props.insert(
                "for_each".into(),
                json!({
                    "description": "One machine per row: a CSV file with a header row (column `name` is the machine name, every other column a var), a YAML/JSON file holding a list of maps, or such a list inline.",
                    "anyOf": [
                        { "type": "string", "minLength": 1 },
                        { "type": "array", "items": { "type": "object" } }
                    ]
                }),
            );
            props.insert(
                "patch".into(),
                json!({
                    "description": "Per-instance JSON merge patches (RFC 7386) on part configs, keyed by the template's part name (e.g. `\"${var:name}-cam\"`).",
                    "type": "object",
                    "additionalProperties": { "type": "object" }
                }),
            );
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const COMMITTED: &str = include_str!("../../fleetform.schema.json");

    /// Set `FLEETFORM_BLESS=1` to rewrite `fleetform.schema.json` from [`source_schema()`].
    #[test]
    fn committed_schema_file_is_current() {
        let pretty = serde_json::to_string_pretty(&source_schema()).unwrap_or_default() + "\n";
        if std::env::var_os("FLEETFORM_BLESS").is_some() {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fleetform.schema.json");
            std::fs::write(path, &pretty).expect("write fleetform.schema.json");
            return;
        }
        let committed: Value =
            serde_json::from_str(COMMITTED).expect("fleetform.schema.json is JSON");
        assert!(
            committed == source_schema(),
            "fleetform.schema.json is stale; regenerate it with \
             `FLEETFORM_BLESS=1 cargo test --lib manifest::schema`"
        );
    }

    #[test]
    fn every_object_denies_unknown_keys_and_documents_its_keys() {
        fn walk(v: &Value, at: &str) {
            if let Some(obj) = v.as_object() {
                if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                    // A fragment import passes unknown keys through to the cloud on purpose.
                    let passthrough = obj.get("title") == Some(&json!("fragment import"));
                    assert_eq!(
                        obj.get("additionalProperties"),
                        Some(&Value::Bool(passthrough)),
                        "{at} must deny unknown keys"
                    );
                    for (k, p) in props {
                        let described = p.get("description").is_some() || p.get("$ref").is_some();
                        assert!(described, "{at}.{k} needs a description");
                    }
                }
                for (k, child) in obj {
                    walk(child, &format!("{at}.{k}"));
                }
            }
        }
        walk(&schema(), "schema");
        walk(&source_schema(), "source_schema");
    }
}

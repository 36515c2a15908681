//! The realistic benchmark fleet: a seeded, deterministic generator of manifests whose part
//! configs look like real ones. Shared by the benches (`#[path = "common/fleetgen.rs"] mod fleetgen;`) and by tests
//! (`#[path = "../benches/common/fleetgen.rs"] mod fleetgen;`).
//!
//! Sizes: S = 10 locations × 10 machines × 2 parts, M = 100 × 10 × 2, L = 1,000 × 10 × 2.
//! Every part config is 1.5–3 KB of JSON: modules with version pins, 6–10 components with
//! nested attributes of every JSON type (strings, integers, floats, booleans, null, lists,
//! objects), services, `depends_on` lists between the components, and a `frame` on some.
//! 20 fragments of about 1 KB each declare a `stable` tag; every part imports one or two of
//! them, some with `version: stable`, some with a `prefix`. The manifest is written in
//! block-style YAML, with attributes and other values three levels into a config in flow
//! style (as people paste them).
//!
//! The same seed gives the same text byte for byte; `bump` edits one attribute of the first
//! part (the one-change workload).

#![allow(dead_code)]

use serde_json::{Map, Value, json};

/// A fleet size: locations × machines per location × 2 parts per machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub name: &'static str,
    pub locations: usize,
    pub machines: usize,
}

pub const S: Size = Size {
    name: "S",
    locations: 10,
    machines: 10,
};
pub const M: Size = Size {
    name: "M",
    locations: 100,
    machines: 10,
};
pub const L: Size = Size {
    name: "L",
    locations: 1000,
    machines: 10,
};

impl Size {
    /// Parts in the fleet (two per machine).
    pub fn parts(&self) -> usize {
        self.locations * self.machines * 2
    }
}

/// Number of fragments every fleet declares.
pub const FRAGMENTS: usize = 20;

/// splitmix64: small, seeded, and stable across crate versions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next_u64() as usize % items.len()]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// A float with two decimals in `lo..hi` (never a whole number, so it stays a float).
    pub fn float(&mut self, lo: f64, hi: f64) -> f64 {
        let steps = ((hi - lo) * 100.0) as u64;
        let f = ((lo + self.range(0, steps) as f64 / 100.0) * 100.0).round() / 100.0;
        if f.fract() == 0.0 { f + 0.5 } else { f }
    }
}

const MODULES: &[(&str, &str)] = &[
    ("viam_realsense", "viam:realsense"),
    ("viam_ur5e", "viam:universal-robots"),
    ("viam_odrive", "viam:odrive"),
    ("viam_yolov8", "viam:yolov8"),
    ("viam_lidar", "viam:rplidar"),
    ("viam_gpio", "viam:raspberry-pi"),
];

const COMPONENT_KINDS: &[(&str, &str, &str)] = &[
    ("arm", "rdk:component:arm", "viam:universal-robots:ur5e"),
    ("camera", "rdk:component:camera", "viam:camera:realsense"),
    ("motor", "rdk:component:motor", "viam:odrive:canbus"),
    ("board", "rdk:component:board", "viam:raspberry-pi:rpi4"),
    ("base", "rdk:component:base", "rdk:builtin:wheeled"),
    ("gripper", "rdk:component:gripper", "viam:robotiq:2f85"),
    ("sensor", "rdk:component:sensor", "viam:sensor:bme280"),
    (
        "encoder",
        "rdk:component:encoder",
        "rdk:builtin:incremental",
    ),
    (
        "movement",
        "rdk:component:movement_sensor",
        "viam:movement:imu-wit",
    ),
];

const SERVICES: &[(&str, &str, &str)] = &[
    ("vision", "rdk:service:vision", "viam:vision:yolov8"),
    ("slam", "rdk:service:slam", "viam:slam:cartographer"),
    ("motion", "rdk:service:motion", "rdk:builtin:builtin"),
    (
        "data_manager",
        "rdk:service:data_manager",
        "rdk:builtin:builtin",
    ),
    (
        "navigation",
        "rdk:service:navigation",
        "rdk:builtin:builtin",
    ),
];

fn version_pin(rng: &mut Rng) -> String {
    format!(
        "{}.{}.{}",
        rng.range(0, 3),
        rng.range(0, 19),
        rng.range(0, 40)
    )
}

fn attributes(rng: &mut Rng, kind: &str, part: usize, bump: bool) -> Value {
    let mut a = Map::new();
    let rev = if bump { 2 } else { 1 };
    a.insert("rev".into(), json!(rev));
    match kind {
        "arm" => {
            a.insert(
                "host".into(),
                json!(format!(
                    "10.{}.{}.{}",
                    part % 250,
                    rng.range(0, 250),
                    rng.range(2, 250)
                )),
            );
            a.insert("speed_degs_per_sec".into(), json!(rng.float(10.0, 120.0)));
            a.insert(
                "acceleration_degs_per_sec2".into(),
                json!(rng.float(20.0, 200.0)),
            );
            a.insert(
                "joint_limits".into(),
                json!(
                    (0..6)
                        .map(|_| json!([-rng.float(100.0, 360.0), rng.float(100.0, 360.0)]))
                        .collect::<Vec<_>>()
                ),
            );
        }
        "camera" => {
            a.insert("sensors".into(), json!(["color", "depth"]));
            a.insert("width_px".into(), json!(*rng.pick(&[640, 1280, 1920])));
            a.insert("height_px".into(), json!(*rng.pick(&[480, 720, 1080])));
            a.insert(
                "intrinsic_parameters".into(),
                json!({
                    "fx": rng.float(400.0, 900.0), "fy": rng.float(400.0, 900.0),
                    "ppx": rng.float(300.0, 700.0), "ppy": rng.float(200.0, 500.0),
                }),
            );
            a.insert(
                "distortion_parameters".into(),
                json!({"rk1": rng.float(0.0, 1.0), "rk2": rng.float(0.0, 1.0), "tp1": null}),
            );
        }
        "motor" => {
            a.insert(
                "serial_number".into(),
                json!(format!("{:012X}", rng.next_u64() & 0xffff_ffff_ffff)),
            );
            a.insert(
                "odrive_config_file".into(),
                json!(format!("/etc/odrive/axis-{}.json", rng.range(0, 3))),
            );
            a.insert("canbus_node_id".into(), json!(rng.range(0, 63)));
            a.insert("max_rpm".into(), json!(rng.range(100, 3000)));
            a.insert(
                "pid".into(),
                json!({"p": rng.float(0.0, 2.0), "i": rng.float(0.0, 1.0), "d": 0.5}),
            );
        }
        "board" => {
            a.insert("digital_interrupts".into(), json!((0..rng.range(1, 3)).map(|i| json!({"name": format!("di{i}"), "pin": format!("{}", rng.range(3, 40))})).collect::<Vec<_>>()));
            a.insert(
                "analogs".into(),
                json!([{"name": "a0", "pin": "0", "spi_bus": "main", "chip_select": "24"}]),
            );
            a.insert("i2cs".into(), json!([{"name": "i2c1", "bus": "1"}]));
        }
        "base" => {
            a.insert("wheel_circumference_mm".into(), json!(rng.range(150, 400)));
            a.insert("width_mm".into(), json!(rng.range(200, 600)));
            a.insert("left".into(), json!(["motor-l"]));
            a.insert("right".into(), json!(["motor-r"]));
            a.insert("spin_slip_factor".into(), json!(rng.float(1.0, 2.0)));
        }
        "gripper" => {
            a.insert(
                "host".into(),
                json!(format!("10.1.{}.{}", rng.range(0, 250), rng.range(2, 250))),
            );
            a.insert("force_percent".into(), json!(rng.range(10, 100)));
            a.insert("inverted".into(), json!(rng.chance(30)));
        }
        "sensor" => {
            a.insert("i2c_bus".into(), json!("1"));
            a.insert("i2c_addr".into(), json!(*rng.pick(&[118, 119])));
            a.insert("poll_interval_ms".into(), json!(rng.range(100, 5000)));
            a.insert(
                "calibration".into(),
                json!({"offset_c": rng.float(-2.0, 2.0), "enabled": true, "notes": null}),
            );
        }
        "encoder" => {
            a.insert("board".into(), json!("board-1"));
            a.insert(
                "pins".into(),
                json!({"a": format!("{}", rng.range(3, 40)), "b": format!("{}", rng.range(3, 40))}),
            );
            a.insert(
                "ticks_per_rotation".into(),
                json!(*rng.pick(&[1024, 2048, 4096])),
            );
        }
        _ => {
            a.insert(
                "serial_path".into(),
                json!(format!("/dev/ttyUSB{}", rng.range(0, 3))),
            );
            a.insert("serial_baud_rate".into(), json!(*rng.pick(&[9600, 115200])));
            a.insert("enable_gps".into(), json!(rng.chance(50)));
        }
    }
    Value::Object(a)
}

/// One part's config (without its fragment imports, which are the part's own list).
pub fn part_config(rng: &mut Rng, part: usize, bump: bool) -> Value {
    let modules: Vec<Value> = (0..rng.range(2, 4))
        .map(|i| {
            let (name, id) = MODULES[(part + i as usize) % MODULES.len()];
            json!({"type": "registry", "name": name, "module_id": id, "version": version_pin(rng)})
        })
        .collect();
    // Ten candidate components; the config keeps the first 6–10 that fit a size drawn from
    // 1.6–2.9 KB, so every config lands in 1.5–3 KB.
    let target = rng.range(1600, 2900) as usize;
    let mut names: Vec<String> = vec![];
    let mut candidates = vec![];
    for i in 0..10 {
        let (kind, api, model) = *rng.pick(COMPONENT_KINDS);
        let name = format!("{kind}-{i}");
        let mut c = Map::new();
        c.insert("name".into(), json!(name));
        c.insert("api".into(), json!(api));
        c.insert("model".into(), json!(model));
        c.insert(
            "attributes".into(),
            attributes(rng, kind, part, bump && i == 0),
        );
        if !names.is_empty() && rng.chance(50) {
            c.insert("depends_on".into(), json!([rng.pick(&names).clone()]));
        }
        if rng.chance(30) {
            c.insert("frame".into(), json!({
                "parent": "world",
                "translation": {"x": rng.range(0, 500), "y": rng.range(0, 500), "z": rng.range(0, 300)},
                "orientation": {"type": "ov_degrees", "value": {"x": 0, "y": 0, "z": 1, "th": rng.range(0, 359)}},
            }));
        }
        names.push(name);
        candidates.push(Value::Object(c));
    }
    let services: Vec<Value> = (0..rng.range(1, 2))
        .map(|i| {
            let (kind, api, model) = *rng.pick(SERVICES);
            json!({"name": format!("{kind}-{i}"), "api": api, "model": model,
                   "attributes": {"capture_dir": "", "sync_interval_mins": rng.float(0.0, 10.0),
                                   "tags": [format!("site-{}", part / 20)], "camera_name": names[0].clone()}})
        })
        .collect();
    let mut config = json!({
        "modules": modules,
        "components": candidates[..6],
        "services": services,
        "network": {"bind_address": ":8080", "no_tls": false},
    });
    // Rarely six heavy components are too much: their frames go first.
    for i in 0..6 {
        if config.to_string().len() <= 3000 {
            break;
        }
        config["components"][i]
            .as_object_mut()
            .expect("a mapping")
            .shift_remove("frame");
    }
    for c in &candidates[6..] {
        let len = config.to_string().len() + c.to_string().len() + 1;
        if len > target.max(1500) {
            break;
        }
        config["components"]
            .as_array_mut()
            .expect("a list")
            .push(c.clone());
    }
    config
}

/// A fragment's config: about 1 KB.
pub fn fragment_config(rng: &mut Rng, i: usize) -> Value {
    let components: Vec<Value> = (0..3)
        .map(|c| {
            let (kind, api, model) = COMPONENT_KINDS[(i + c) % COMPONENT_KINDS.len()];
            json!({"name": format!("kit{i}-{kind}"), "api": api, "model": model,
                   "attributes": attributes(rng, kind, i, false)})
        })
        .collect();
    json!({
        "modules": [{"type": "registry", "name": MODULES[i % MODULES.len()].0,
                     "module_id": MODULES[i % MODULES.len()].1, "version": version_pin(rng)}],
        "components": components,
    })
}

/// Below this many levels of a config, values are written in flow style (JSON, which is
/// YAML too), as people paste attributes; above, in block style.
const FLOW_DEPTH: usize = 3;

/// Writes `v` (at `depth` inside its config) as YAML at `indent` spaces: a mapping's or
/// list's body.
fn emit(out: &mut String, v: &Value, indent: usize, depth: usize) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                out.push_str(&pad);
                out.push_str(k);
                out.push(':');
                emit_value(out, v, indent, depth + 1);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for v in a {
                out.push_str(&pad);
                out.push('-');
                match v {
                    Value::Object(m) if !m.is_empty() && depth + 1 < FLOW_DEPTH => {
                        // The first key on the dash's line, the rest below it.
                        let mut first = true;
                        for (k, v) in m {
                            if first {
                                out.push(' ');
                                first = false;
                            } else {
                                out.push_str(&pad);
                                out.push_str("  ");
                            }
                            out.push_str(k);
                            out.push(':');
                            emit_value(out, v, indent + 2, depth + 2);
                        }
                    }
                    _ => emit_value(out, v, indent, depth + 1),
                }
            }
        }
        _ => {
            out.push_str(&pad);
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}

/// After `key:` or `-`: a scalar or a flow collection on the same line, or a block below.
fn emit_value(out: &mut String, v: &Value, indent: usize, depth: usize) {
    let nested = matches!(v, Value::Object(m) if !m.is_empty())
        || matches!(v, Value::Array(a) if !a.is_empty());
    if nested && depth < FLOW_DEPTH {
        out.push('\n');
        emit(out, v, indent + 2, depth);
    } else {
        out.push(' ');
        out.push_str(&scalar(v));
        out.push('\n');
    }
}

/// A scalar or flow collection in YAML: JSON text (strings double-quoted; JSON escapes are
/// valid YAML).
fn scalar(v: &Value) -> String {
    v.to_string()
}

/// The manifest of fleet `size`; `bump` edits one attribute of the first part.
pub fn fleet_yaml(size: Size, bump: bool) -> String {
    let mut rng = Rng::new(0x5eed_f1ee_7000 + size.locations as u64);
    let mut root = String::from("version: 1\norganization: bench\nfragments:\n");
    for i in 0..FRAGMENTS {
        root.push_str(&format!(
            "  - name: kit-{i:02}\n    tags:\n      stable: current\n    config:\n"
        ));
        emit(&mut root, &fragment_config(&mut rng, i), 6, 0);
    }
    root.push_str("locations:\n");
    let mut part = 0;
    for l in 0..size.locations {
        root.push_str(&format!("  - name: site-{l:04}\n    machines:\n"));
        for m in 0..size.machines {
            root.push_str(&format!("      - name: m{l:04}-{m:02}\n        parts:\n"));
            for (role, main) in [("main", true), ("aux", false)] {
                root.push_str(&format!("          - name: m{l:04}-{m:02}-{role}\n"));
                if main {
                    root.push_str("            main: true\n");
                }
                root.push_str("            fragments:\n");
                let first = rng.range(0, FRAGMENTS as u64 - 1) as usize;
                root.push_str(&format!(
                    "              - name: kit-{first:02}\n                version: stable\n"
                ));
                if rng.chance(50) {
                    let second = (first + 1 + rng.range(0, 5) as usize) % FRAGMENTS;
                    root.push_str(&format!(
                        "              - name: kit-{second:02}\n                prefix: {role}-ext\n"
                    ));
                }
                root.push_str("            config:\n");
                let config = part_config(&mut rng, part, bump && part == 0);
                emit(&mut root, &config, 14, 0);
                part += 1;
            }
        }
    }
    root
}

/// The templated form of fleet `size` (issue 14): `fleet.yaml` with the fragments and one
/// `rover` template (two parts with realistic configs, an `ip` variable in each), one
/// included `sites/site-NNNN.yaml` per location, and one CSV inventory per location
/// (`inventory/site-NNNN.csv`, a row per machine). Returns the files as (path, text);
/// `bump` edits one attribute of the template (every machine's main part changes).
pub fn templated_fleet(size: Size, bump: bool) -> Vec<(String, String)> {
    let mut rng = Rng::new(0x5eed_f1ee_7000 + size.locations as u64);
    let mut root =
        String::from("version: 1\norganization: bench\ninclude: [sites/*.yaml]\nfragments:\n");
    for i in 0..FRAGMENTS {
        root.push_str(&format!(
            "  - name: kit-{i:02}\n    tags:\n      stable: current\n    config:\n"
        ));
        emit(&mut root, &fragment_config(&mut rng, i), 6, 0);
    }
    root.push_str("templates:\n  - name: rover\n    parts:\n");
    for (i, (role, main)) in [("main", true), ("aux", false)].into_iter().enumerate() {
        root.push_str(&format!("      - name: \"${{var:name}}-{role}\"\n"));
        if main {
            root.push_str("        main: true\n");
        }
        root.push_str(&format!(
            "        fragments:\n          - name: kit-{i:02}\n            version: stable\n        config:\n"
        ));
        let mut config = part_config(&mut rng, i, bump && main);
        if let Some(first) = config["components"].get_mut(0)
            && let Some(attrs) = first.get_mut("attributes").and_then(Value::as_object_mut)
        {
            attrs.insert("host".into(), Value::String("${var:ip}".into()));
        }
        emit(&mut root, &config, 10, 0);
    }
    let mut files = vec![("fleet.yaml".to_string(), root)];
    for l in 0..size.locations {
        files.push((
            format!("sites/site-{l:04}.yaml"),
            format!(
                "locations:\n  - name: site-{l:04}\n    machines:\n      - template: rover\n        for_each: ../inventory/site-{l:04}.csv\n"
            ),
        ));
        let mut csv = String::from("name,ip\n");
        for m in 0..size.machines {
            csv.push_str(&format!("m{l:04}-{m:02},10.{}.{}.{m}\n", l / 256, l % 256));
        }
        files.push((format!("inventory/site-{l:04}.csv"), csv));
    }
    files
}

/// The tiny-config fleet of the first benchmarks (one small component per part, no
/// fragments), kept for comparison.
pub fn tiny_fleet_yaml(size: Size, bump: bool) -> String {
    let mut t = String::from("version: 1\norganization: bench\nlocations:\n");
    for l in 0..size.locations {
        t.push_str(&format!("  - name: site-{l:03}\n    machines:\n"));
        for m in 0..size.machines {
            let rev = if bump && l == 0 && m == 0 { 2 } else { 1 };
            t.push_str(&format!(
                "      - name: m{l:03}-{m:02}\n        parts:\n\
                 \x20         - name: m{l:03}-{m:02}-main\n            main: true\n\
                 \x20           config: {{ components: [ {{ name: c0, model: fake, attributes: {{ rev: {rev}, slot: {m} }} }} ] }}\n\
                 \x20         - name: m{l:03}-{m:02}-aux\n\
                 \x20           config: {{ components: [ {{ name: c1, model: fake, attributes: {{ rev: 1, slot: {m} }} }} ] }}\n"
            ));
        }
    }
    t
}

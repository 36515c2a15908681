//! The fast reader against yaml-rust2: whenever it answers, its tree (positions, scalar
//! styles, tags) equals yaml-rust2's; what it does not handle falls back and still parses.

use super::super::super::config::{Ready, prebuild_inline};
use super::super::{Node, NodeKind, Parsed, parse, parse_events, parse_manifest};
use super::{Unsupported, parse as fast};
use std::path::{Path, PathBuf};

#[path = "../../../../benches/common/fleetgen.rs"]
mod fleetgen;

/// Where two trees first differ (for a readable failure).
fn first_difference(a: &Node, b: &Node, path: &str) -> Option<String> {
    let here = || Some(format!("at {path}: {:?} vs {:?}", brief(a), brief(b)));
    if a.pos != b.pos {
        return here();
    }
    match (&a.kind, &b.kind) {
        (NodeKind::Scalar { .. }, NodeKind::Scalar { .. }) => (a != b).then(|| here().unwrap()),
        (NodeKind::Seq(x), NodeKind::Seq(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]"))),
        (NodeKind::Map(x), NodeKind::Map(y)) if x.len() == y.len() => {
            x.iter().zip(y).find_map(|(x, y)| {
                let p = format!("{path}.{}", x.key_text());
                first_difference(&x.key, &y.key, &p)
                    .or_else(|| first_difference(&x.value, &y.value, &p))
            })
        }
        _ => here(),
    }
}

fn brief(n: &Node) -> String {
    let what = match &n.kind {
        NodeKind::Scalar { value, plain } => format!("{value:?} plain={plain}"),
        NodeKind::Seq(items) => format!("list of {}", items.len()),
        NodeKind::Map(entries) => format!("map of {}", entries.len()),
    };
    format!("{}:{} {what}", n.pos.line, n.pos.column)
}

#[track_caller]
fn same(quick: &Parsed, slow: &Parsed, text: &str) {
    if quick == slow {
        return;
    }
    let diff = quick
        .docs
        .iter()
        .zip(&slow.docs)
        .find_map(|(a, b)| first_difference(a, b, ""))
        .unwrap_or_else(|| format!("{} vs {} documents", quick.docs.len(), slow.docs.len()));
    panic!("fast vs yaml-rust2 {diff}\nin {text:?}");
}

/// The fast reader reads `text`, and its tree is yaml-rust2's, with and without configs
/// written as they are read (see [`streamed_like_prebuilt`]).
#[track_caller]
fn agree(text: &str) -> Parsed {
    assert!(
        never_disagrees(text),
        "fell back: {:?} in {text:?}",
        fast(text, false).err()
    );
    fast(text, false).expect("read")
}

/// The fast reader does not read `text`, and [`parse`] gives yaml-rust2's answer.
#[track_caller]
fn falls_back(text: &str) -> Unsupported {
    let u = fast(text, false).expect_err(text);
    assert!(fast(text, true).is_err(), "{text:?}");
    assert_eq!(parse(text), parse_events(text, false), "{text:?}");
    assert_eq!(parse_manifest(text), parse_events(text, true), "{text:?}");
    u
}

/// The fast reader never disagrees with yaml-rust2: it answers the same tree or falls back,
/// and the same configs when they are written as they are read.
#[track_caller]
fn never_disagrees(text: &str) -> bool {
    let mut read = false;
    for stream in [false, true] {
        match fast(text, stream) {
            Ok(quick) => {
                let slow = parse_events(text, stream).unwrap_or_else(|e| {
                    panic!("fast read what yaml-rust2 refuses: {e:?} in {text:?}")
                });
                same(&quick, &slow, text);
                read = true;
            }
            Err(_) => assert!(!read, "read only without configs: {text:?}"),
        }
    }
    if read {
        streamed_like_prebuilt(text);
    }
    read
}

/// Writing configs as the manifest is read ends where building them after did: the same
/// tree (each clean config an empty mapping) and the same configs, once
/// [`prebuild_inline`] has run on both.
#[track_caller]
fn streamed_like_prebuilt(text: &str) {
    let plain = parse(text).expect("parsed");
    let streamed = parse_manifest(text).expect("parsed");
    assert!(plain.configs.is_empty());
    assert_eq!(plain.docs.len(), streamed.docs.len());
    for (mut a, mut b) in plain.docs.into_iter().zip(streamed.docs) {
        let built = prebuild_inline(&mut a, Ready::new());
        let taken = prebuild_inline(&mut b, streamed.configs.clone());
        if let Some(diff) = first_difference(&a, &b, "") {
            panic!("streamed vs built after {diff}\nin {text:?}");
        }
        assert!(built == taken, "streamed configs differ in {text:?}");
    }
}

#[test]
fn block_structure_positions_and_styles() {
    for text in [
        "a: 1\nb:\nc: x\n",
        "a: 1\nb: [x, y]\n",
        "# c\n\nname: x\nitems:\n  - a: b\n  - {a: \"q\"}\n",
        "k:\n  - a: 1\n    b:\n  - c\nl:",
        "a:\n- b: 1\n  c: 2\n- [x]\nk:\n- y\nl:\n-   \"z\"\nm:\n- - n\n",
        "- - x\n  - y\n- z: 1\n",
        "- a\n- b: c\n  d: e\n",
        "a:\n    b:\n        c: 1\n    d: 2\ne: 3\n",
        "a:   \n  - x   \n    # comment at any indentation\n  - y\n",
        "é: ü\nñ: \"ü\" # c\n\"q\" : 1\na  : b#c\nz: -3\nu: http://x:80/y\n",
        "a: 'it''s'\nb: \"x\\ty\\u00e9\\\\\\\"\\/\\x41\\U0001F600\\N\\_\\L\\P\\0\\ \"\n",
        "a: b]\nc: x, y\nd: 12:30\ne: a :b\n",
        "a:\n  hello world\nb: 2\n",
        "a:\n  [1, 2]\nb:\n  {c: d}\n",
        "  a: 1\n  b: 2\n",
        "scalar\n",
        "[a, b]\n",
        "{a: 1}",
        "a: 1\r\nb:\r\n  - x\r\nc: \"y\"\r\n",
        "a:",
        "\na:\n\n\n",
        "\na:\n  # c",
        "\na:  ",
        "\na:\n   ",
        "---\na: 1\n",
        "--- # c\na: 1\n...\n",
        "---\na: 1\n---\nb: 2\n",
        "a: 1\n---\nb:\n...\n---\nc: 3\n",
        "a: ---\n---b: 1\n",
        "",
        "# only a comment",
        "\n\n",
        "<<: 1\n",
    ] {
        agree(text);
    }
}

#[test]
fn flow_collections_on_one_line_or_several() {
    for text in [
        "a: {b: 1, c: [x, y], \"d\": null}\n",
        "a: [1,2,{\"b\":[3]}]\n",
        "y: {\"a\":\"3\",\"b\":4}\nz: [ ]\nw: {}\n",
        "x: [1, 2,\n  3]\n",
        "x: [a\n  , b]\n",
        "x: [a, # c\n  b]\n",
        "x: {\n  a: 1,\n  b: [\n    2\n  ] }\n",
        "x: {a : b, 'c': 'd'}\n",
        "x: [a:b, -1, -x, \"q\"]\n",
        "- [a, [b, [c, {d: [e]}]]]\n",
        "x: [ a b , c ]\n",
        "x:\n  [1,\n\n   2]\n",
        "x: [a, é, b, {ü: c, d: \"ñ\", e: f}]\ny: [a, b]\n",
    ] {
        agree(text);
    }
}

#[test]
fn anchors_and_aliases() {
    for text in [
        "a: &x {b: 1}\nc: *x\n",
        "f: &y\n  g: h\ni: *y\n",
        "- &a\n  b: 1\n- &c [1]\n- *a\n- &d\n  - 1\n- *c\n- *d\n",
        "a: &x\n  - 1\nb: &z 2\nc: *z\nd: [*z, *x]\ne: {k: *x}\n",
        "a: &x 1\nb: &x 2\nc: *x\n",
        "a: [&x 1, *x]\nb: {k: &y v, l: *y}\n",
    ] {
        agree(text);
    }
}

#[test]
fn what_it_does_not_read_falls_back_and_still_parses() {
    for text in [
        "a: |\n  text\n",
        "a: >\n  text\n",
        "a: !tag 1\n",
        "a: !!str 1\n",
        "? a\n: b\n",
        "[a]: b\n",
        "a: b\n c\n",
        "- a\n - b\n",
        "a: \"x\n  y\"\n",
        "a: 'x\n  y'\n",
        "a:\tb\n",
        "%YAML 1.2\n---\na: 1\n",
        "a: 1\rb: 2\n",
        "a: \u{feff}x\n",
        "a:\n- \n-\n- x\n",
        "x: {a:b}\n",
        "x: [a, b, ]\n",
        "x: [a: b]\n",
        "a: &x\n- 1\n",
        "a: *unknown\n",
        "a: &x [*x]\n",
        "&a k: v\n",
        "a: 'x' y\n",
        "\"a\":b\n",
        "a: b: c\n",
        "a:\n  b: 1\n c: 2\n",
        "a: [\n  1,\n]\n",
        "---\n---\n",
        "a: 1\n...\nb: 2\n",
        "a: [1\n",
        "a: \"\\q\"\n",
        "a: \"\\uD800\"\n",
        "a: @x\n",
        "a: `x`\n",
        "a: [b, - c]\n",
    ] {
        falls_back(text);
    }
    let long_key = format!("{}: 1\n", "k".repeat(1500));
    falls_back(&long_key);
}

#[test]
fn limits_hold_on_the_fast_path_too() {
    use super::super::{MAX_ALIASES, MAX_YAML_DEPTH, tests::alias_bomb};
    let depth = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    agree(&depth(MAX_YAML_DEPTH));
    let err = parse(&depth(MAX_YAML_DEPTH + 1)).expect_err("too deep");
    assert!(
        err.message.contains("nested more than 64 levels"),
        "{err:?}"
    );
    falls_back(&depth(MAX_YAML_DEPTH + 1));
    let block = "- ".repeat(100_000) + "x\n";
    assert!(fast(&block, false).is_err());
    let err = parse(&block).expect_err("too deep");
    assert!(err.message.contains("nested more than"), "{err:?}");
    agree(&alias_bomb(3));
    let err = parse(&alias_bomb(12)).expect_err("a bomb");
    assert!(
        err.message.contains("alias bomb") && err.pos.line == 6,
        "{err:?}"
    );
    falls_back(&alias_bomb(12));
    let mut many = String::from("a: &x 1\nb: [");
    many.push_str(&vec!["*x"; MAX_ALIASES + 1].join(", "));
    many.push_str("]\n");
    falls_back(&many);
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Every manifest in the repository (examples, plan fixtures, the bad-manifest corpus):
/// the fast reader agrees wherever it answers, and answers for all but the files that use
/// what it does not read.
#[test]
fn every_manifest_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["examples", "tests/fixtures", "tests/manifest_corpus"] {
        yaml_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 100, "{}", files.len());
    let mut fell_back = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read");
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        if !never_disagrees(text) {
            fell_back.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
    fell_back.sort();
    // Syntax errors and tags: yaml-rust2 reads these.
    assert_eq!(
        fell_back,
        [
            "tests/manifest_corpus/files/invalid.yaml",
            "tests/manifest_corpus/syntax_error.yaml",
            "tests/manifest_corpus/yaml_tag_and_merge_key.yaml",
        ]
    );
}

#[test]
fn the_generated_fleets() {
    let fleet = fleetgen::fleet_yaml(fleetgen::S, false);
    agree(&fleet);
    // Every config of the realistic fleet is written as it is read.
    let streamed = parse_manifest(&fleet).expect("parsed");
    assert_eq!(
        streamed.configs.len(),
        fleetgen::S.parts() + fleetgen::FRAGMENTS
    );
    agree(&fleetgen::tiny_fleet_yaml(fleetgen::S, true));
    for (path, text) in fleetgen::templated_fleet(fleetgen::S, true) {
        if path.ends_with(".yaml") {
            agree(&text);
        }
    }
}

/// Random documents in the subset, written in the many ways YAML allows.
struct Gen {
    rng: fleetgen::Rng,
    out: String,
    crlf: bool,
    /// Anchors that may be aliased, and the next anchor's number.
    anchors: Vec<String>,
    next: usize,
}

const WORDS: &[&str] = &[
    "x",
    "name",
    "rover-01",
    "1",
    "-3",
    "0x1f",
    "1.5",
    "1e3",
    ".inf",
    "true",
    "False",
    "null",
    "~",
    "yes",
    "Zürich",
    "a b",
    "a:b",
    "b#c",
    "http://h:80/p",
    "12:30",
    "x]",
    "¿qué?",
    "a-",
    "-a",
    "--",
    "...x",
    "e=mc2",
    "<<",
    "日本",
];

impl Gen {
    fn nl(&mut self) {
        if self.rng.chance(15) {
            self.out
                .push_str(if self.rng.chance(50) { "  " } else { " # c" });
        }
        self.out.push_str(if self.crlf { "\r\n" } else { "\n" });
        if self.rng.chance(8) {
            let pad = " ".repeat(self.rng.range(0, 6) as usize);
            self.out.push_str(&pad);
            self.out.push_str(if self.rng.chance(50) {
                "# note\n"
            } else {
                "\n"
            });
        }
    }

    fn word(&mut self) -> String {
        (*self.rng.pick(WORDS)).to_string()
    }

    /// A scalar: plain, single- or double-quoted (with escapes).
    fn scalar(&mut self, flow: bool) -> String {
        match self.rng.range(0, 5) {
            0 => format!("'{}'", self.word().replace('\'', "''") + "''s"),
            1 => {
                let esc = *self.rng.pick(&[
                    "\\n", "\\\"", "\\\\", "\\t", "\\u00e9", "\\x41", "", " # no",
                ]);
                format!("\"{}{esc}\"", self.word())
            }
            _ => {
                let w = self.word();
                if flow && (w.contains(']') || w.contains(':') || w.contains(" ")) {
                    "plain".into()
                } else {
                    w
                }
            }
        }
    }

    fn key(&mut self, i: usize) -> String {
        match self.rng.range(0, 6) {
            0 => format!("\"k{i} q\""),
            1 => format!("'k{i}'"),
            _ => format!("k{i}"),
        }
    }

    /// Maybe an anchor (`&name `) for the next node; its name may be aliased once the node
    /// is written ([`Gen::done`]).
    fn anchor(&mut self) -> (String, Option<String>) {
        if self.rng.chance(10) {
            let name = format!("a{}", self.next);
            self.next += 1;
            (format!("&{name} "), Some(name))
        } else {
            (String::new(), None)
        }
    }

    fn done(&mut self, anchored: Option<String>) {
        self.anchors.extend(anchored);
    }

    fn flow(&mut self, depth: usize, multiline: bool) -> String {
        let sep = |g: &mut Gen| {
            if multiline && g.rng.chance(30) {
                format!(",{}{}", if g.crlf { "\r\n" } else { "\n" }, " ".repeat(40))
            } else {
                ", ".into()
            }
        };
        let n = self.rng.range(0, 4) as usize;
        let map = self.rng.chance(50);
        let mut items = Vec::new();
        for i in 0..n {
            let v = if depth < 3 && self.rng.chance(25) {
                self.flow(depth + 1, multiline)
            } else if !self.anchors.is_empty() && self.rng.chance(5) {
                format!("*{}", self.rng.pick(&self.anchors.clone()))
            } else {
                self.scalar(true)
            };
            items.push(if map {
                let k = self.key(i);
                let colon = if k.starts_with('"') && self.rng.chance(50) {
                    ":"
                } else {
                    ": "
                };
                format!("{k}{colon}{v}")
            } else {
                v
            });
        }
        let mut body = String::new();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push_str(&sep(self));
            }
            body.push_str(item);
        }
        if map {
            format!("{{{body}}}")
        } else {
            format!("[{body}]")
        }
    }

    /// A node written after `key:` or `-` (the indicator already written), whose block
    /// children go at `indent`.
    fn value(&mut self, indent: usize, depth: usize, in_map: bool) {
        let (anchor, anchored) = self.anchor();
        let kind = if depth >= 5 { 0 } else { self.rng.range(0, 9) };
        match kind {
            0..=3 => {
                let s = if !self.anchors.is_empty() && anchor.is_empty() && self.rng.chance(8) {
                    format!("*{}", self.rng.pick(&self.anchors.clone()))
                } else {
                    self.scalar(false)
                };
                self.out.push(' ');
                self.out.push_str(&anchor);
                self.out.push_str(&s);
                self.nl();
            }
            4 => {
                self.out.push(' ');
                self.out.push_str(&anchor);
                let f = self.flow(0, true);
                self.out
                    .push_str(&f.replace(&" ".repeat(40), &" ".repeat(indent + 1)));
                self.nl();
            }
            5 if in_map && anchor.is_empty() => {
                // Empty value.
                self.nl();
            }
            _ => {
                if !anchor.is_empty() {
                    self.out.push(' ');
                    self.out.push_str(anchor.trim_end());
                }
                self.nl();
                let step = self.rng.range(1, 4) as usize;
                let indentless = in_map && anchor.is_empty() && self.rng.chance(30);
                let child = if indentless {
                    indent - 2
                } else {
                    indent + step
                };
                self.block(child, depth + 1, indentless);
            }
        }
        self.done(anchored);
    }

    fn block(&mut self, indent: usize, depth: usize, force_seq: bool) {
        let pad = " ".repeat(indent);
        let n = self.rng.range(1, 4) as usize;
        if force_seq || self.rng.chance(40) {
            for _ in 0..n {
                self.out.push_str(&pad);
                self.out.push('-');
                if depth < 5 && self.rng.chance(25) {
                    // A compact mapping on the dash's line.
                    let m = self.rng.range(1, 3) as usize;
                    for i in 0..m {
                        if i == 0 {
                            self.out.push(' ');
                        } else {
                            self.out.push_str(&pad);
                            self.out.push_str("  ");
                        }
                        let k = self.key(i);
                        self.out.push_str(&k);
                        self.out.push(':');
                        self.value(indent + 2 + 2, depth + 1, true);
                    }
                } else {
                    self.value(indent + 2, depth, false);
                }
            }
        } else {
            for i in 0..n {
                self.out.push_str(&pad);
                let k = self.key(i);
                self.out.push_str(&k);
                self.out.push(':');
                self.value(indent + 2, depth, true);
            }
        }
    }

    fn document(seed: u64) -> String {
        let mut g = Gen {
            rng: fleetgen::Rng::new(seed),
            out: String::new(),
            crlf: false,
            anchors: Vec::new(),
            next: 0,
        };
        g.crlf = g.rng.chance(15);
        if g.rng.chance(15) {
            g.out.push_str("# header\n\n");
        }
        if g.rng.chance(15) {
            g.out.push_str("---\n");
        }
        g.block(0, 0, false);
        if g.rng.chance(10) {
            g.out.push_str("---\n");
            g.block(0, 0, false);
        }
        g.out
    }
}

/// A property test: random documents of the subset read the same on both paths (the
/// generator's indentless lists under an unindented key fall back; they are counted).
#[test]
fn random_documents_of_the_subset_read_alike() {
    let mut read = 0;
    for seed in 0..3000 {
        let text = Gen::document(seed);
        if never_disagrees(&text) {
            read += 1;
        }
    }
    assert!(read > 2950, "only {read} of 3000 read by the fast path");
}

/// Random edits of random documents (YAML's indicators inserted, removed or replaced):
/// whatever the text, the fast reader answers yaml-rust2's tree or falls back.
#[test]
fn edited_documents_never_disagree() {
    const EDITS: &[&str] = &[
        " ", "\n", ":", "-", "#", "[", "]", "{", "}", ",", "\"", "'", "&", "*", "|", "!", "?",
        "\\", "é", "  ", "- ", ": ", "---\n", "...\n", "\r\n", "&x ", "*x",
    ];
    let mut rng = fleetgen::Rng::new(7);
    let mut read = 0;
    const N: u64 = 6000;
    for seed in 0..N {
        let mut text = Gen::document(10_000 + seed);
        for _ in 0..rng.range(1, 3) {
            let mut at = rng.range(0, text.len() as u64) as usize;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let edit = *rng.pick(EDITS);
            match rng.range(0, 2) {
                0 => text.insert_str(at, edit),
                1 => {
                    let mut end = (at + 1).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => {
                    let mut end = (at + 1).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, edit);
                }
            }
        }
        if never_disagrees(&text) {
            read += 1;
        }
    }
    // Many edits stay valid YAML in the subset; the rest fell back.
    assert!(
        read > 1000,
        "only {read} of {N} edited documents read by the fast path"
    );
}

/// Configs written without nodes that turn out to need them (not clean, or holding an
/// anchor or alias) are read again as nodes; the answer is the same as yaml-rust2's.
#[test]
fn configs_that_need_their_nodes_are_read_again() {
    let part = |config: &str| {
        format!(
            "version: 1\nlocations:\n  - name: L\n    machines:\n      - name: m\n        parts:\n          - name: p\n            config: {config}\n          - name: q\n            config: {{k: 1}}\n"
        )
    };
    for (config, written) in [
        ("{a: 1}", 2),
        ("{a: \"${env:X}\"}", 1),
        ("{a: 1, a: 2}", 1),
        ("{fragments: [f]}", 1),
        ("{a: [{b: {c: 1}}], <<: {d: 2}}", 1),
        ("{a: &x 1, b: *x}", 2),
        ("{a: &x {b: [1]}}\n            z: *x", 2),
        ("{a: [&x 1, 2]}\n            z: [*x]", 2),
    ] {
        let text = part(config);
        agree(&text);
        let parsed = parse_manifest(&text).expect("parsed");
        assert_eq!(parsed.configs.len(), written, "{text}");
    }
    // What the fast reader does not read, inside a config or outside, falls back as
    // before, configs and all.
    for config in [
        "\n              a: |\n                text\n",
        "{a: 1}\nz: |\n  text\n",
    ] {
        falls_back(&part(config));
    }
    // Past the rereads, every config is read as nodes (and written at its end).
    let mut many = String::from("version: 1\nfragments:\n");
    for i in 0..6 {
        many.push_str(&format!(
            "  - name: f{i}\n    config: {{a: &x{i} 1}}\n    z: *x{i}\n"
        ));
    }
    agree(&many);
    assert_eq!(parse_manifest(&many).expect("parsed").configs.len(), 6);
}

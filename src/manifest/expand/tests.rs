use super::inventory::parse_csv;
use super::patch::merge_patch;
use super::*;

#[test]
fn csv_quotes_blank_lines_and_positions() {
    let rows = parse_csv("name,note\r\n\r\nr1,\"a, \"\"b\"\"\"\n\"r2\",\n", 3).expect("csv");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1].1.as_str(), Some("a, \"b\""));
    assert_eq!(
        rows[0][1].1.pos,
        Pos {
            line: 3,
            column: 4,
            src: 3
        }
    );
    assert_eq!(rows[1][0].1.as_str(), Some("r2"));
    assert_eq!(rows[1][1].1.as_str(), Some(""));
    assert!(parse_csv("", 0).is_err());
    assert!(parse_csv("a,a\n", 0).unwrap_err().1.contains("twice"));
    assert!(
        parse_csv("a\n\"x\n", 0)
            .unwrap_err()
            .1
            .contains("not closed")
    );
}

#[test]
fn variables_replace_and_escape() {
    let vars = BTreeMap::from([("a".to_string(), "1".to_string())]);
    assert_eq!(substitute("x", &vars), Ok(None));
    assert_eq!(
        substitute("${var:a}-${var:a}", &vars),
        Ok(Some("1-1".into()))
    );
    assert_eq!(
        substitute("$${var:a} ${var:a}", &vars),
        Ok(Some("${var:a} 1".into()))
    );
    assert_eq!(substitute("${var:b}", &vars), Err("b".into()));
}

#[test]
fn paths_join_and_patterns_match() {
    assert_eq!(join("sites", "../inv/f.csv"), "inv/f.csv");
    assert_eq!(join("", "a.yaml"), "a.yaml");
    assert_eq!(join("a/b", "./c/../d.yaml"), "a/b/d.yaml");
    assert_eq!(join("a", "../../x"), "../x");
    let m = crate::model::rules::wildcard_match;
    assert!(m("*.yaml", "field.yaml"));
    assert!(m("site-?.yaml", "site-a.yaml"));
    assert!(!m("*.yaml", "field.yml"));
    assert!(!m("?", ""));
}

#[test]
fn merge_patch_follows_rfc_7386() {
    let node = |t: &str| span::parse(t).expect("yaml").docs.remove(0);
    let mut target = node("{ a: { b: 1, c: 2 }, d: [1], e: x }");
    merge_patch(
        &mut target,
        node("{ a: { b: null, z: 3 }, d: [2], e: { f: 1 } }"),
    );
    let v: serde_json::Value = super::super::de::from_node(&target).expect("value");
    assert_eq!(
        v,
        serde_json::json!({"a": {"c": 2, "z": 3}, "d": [2], "e": {"f": 1}})
    );
}

#[test]
fn instance_configs_are_built_from_the_template_as_a_copy_would_be() {
    use serde_json::json;
    let text = r#"version: 1
organization: a
templates:
  - name: rover
    vars: {port: "8080", key: k}
    parts:
      - name: "${var:name}-main"
        config:
          components:
            - name: cam-${var:name}
              attributes:
                port: ${var:port}
                quoted: "${var:port}"
                lit: $${var:port}
                ${var:key}: true
                none: ${var:empty}
                list: [1, x]
  - name: secret
    parts:
      - name: "${var:name}-main"
        config: {token: "${env:TOKEN}", who: "${var:name}"}
locations:
  - name: HQ
    machines:
      - {template: rover, name: r1, vars: {empty: ""}}
      - {template: rover, name: r2, vars: {empty: "", port: "9.5", key: other}}
      - template: rover
        name: r3
        vars: {empty: ""}
        patch: {r3-main: {extra: "${var:name}"}}
      - {template: secret, name: s1}
"#;
    let env = |name: &str| (name == "TOKEN").then(|| "t0ken".to_string());
    let d = crate::manifest::parse_str(text, Path::new("m.yaml"), &env).expect("loads");
    let configs: Vec<_> = d.locations[0]
        .machines
        .iter()
        .map(|m| {
            (
                m.parts[0].config.json.to_value(),
                m.parts[0].config.sensitive.len(),
            )
        })
        .collect();
    let rover = |name: &str, port: serde_json::Value, quoted: &str, key: &str| {
        let mut attributes = json!({
            "port": port, "quoted": quoted, "lit": "${var:port}", "none": null, "list": [1, "x"]
        });
        attributes[key] = json!(true);
        json!({"components": [{"name": format!("cam-{name}"), "attributes": attributes}]})
    };
    let mut patched = rover("r3", json!(8080), "8080", "k");
    patched["extra"] = json!("r3");
    assert_eq!(
        configs,
        [
            (rover("r1", json!(8080), "8080", "k"), 0),
            (rover("r2", json!(9.5), "9.5", "other"), 0),
            (patched, 0),
            (json!({"token": "t0ken", "who": "s1"}), 1),
        ]
    );
    // The unpatched instances without `${env:` have their configs built from the template.
    let root = span::parse(text).expect("yaml").docs.remove(0);
    let mut origins = Origins::single(Path::new("m.yaml"));
    let Ok(x) = expand(
        root,
        Path::new("m.yaml"),
        &LoadOptions::default(),
        &mut origins,
    ) else {
        panic!("expands");
    };
    assert_eq!(x.configs.len(), 2);
    // Key order is the template's, as written.
    let r1 = &d.locations[0].machines[0].parts[0].config.json;
    assert!(
        r1.text()
            .contains(r#"{"port":8080,"quoted":"8080","lit":"${var:port}","k":true"#)
    );
}

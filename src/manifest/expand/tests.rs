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

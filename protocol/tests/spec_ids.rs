//! SPEC.md and the code cite the same requirement ids: every id the workspace's code names is
//! defined in SPEC.md, and no id is defined twice.

use std::collections::BTreeSet;
use std::path::Path;

fn defined_ids(spec: &str) -> Vec<String> {
    // Definitions look like **[AUTH-3]**.
    spec.match_indices("**[")
        .filter_map(|(at, _)| {
            let rest = &spec[at + 3..];
            let end = rest.find("]**")?;
            Some(rest[..end].to_owned())
        })
        .collect()
}

fn is_requirement_id(s: &str) -> bool {
    let Some((group, number)) = s.split_once('-') else { return false };
    group.len() >= 2
        && group.bytes().all(|b| b.is_ascii_uppercase())
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Ids cited in Rust sources, as `requirement("X-N")`, `` `X-N` `` or `"X-N"`.
fn cited_ids(dir: &Path, out: &mut BTreeSet<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target" && n != ".git") {
                cited_ids(&path, out);
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for quote in ['"', '`'] {
            for piece in text.split(quote).skip(1).step_by(2) {
                if is_requirement_id(piece) {
                    out.insert((piece.to_owned(), path.display().to_string()));
                }
            }
        }
    }
}

#[test]
fn every_cited_requirement_is_defined_once_in_the_spec() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = std::fs::read_to_string(crate_dir.join("SPEC.md")).unwrap();
    let defined = defined_ids(&spec);
    let unique: BTreeSet<&String> = defined.iter().collect();
    assert_eq!(unique.len(), defined.len(), "an id is defined twice in SPEC.md");
    assert!(defined.len() >= 60, "SPEC.md defines only {} ids", defined.len());
    for id in &defined {
        assert!(is_requirement_id(id), "malformed id {id}");
    }

    let mut cited = BTreeSet::new();
    cited_ids(crate_dir.parent().unwrap(), &mut cited);
    assert!(cited.len() > 20, "found only {} citations", cited.len());
    let missing: Vec<_> = cited.iter().filter(|(id, _)| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "cited but not defined in SPEC.md: {missing:?}");
}

//! Invariant: DESIGN.md and README.md only name files that exist, so what
//! they say is checked where they say it is.

use std::path::Path;

/// Every path-like code span in `text`: `src/...`, `tests/...`, `cli/...`,
/// `benches/...`, `fuzz/...`, `examples/...`, `python/...`.
fn paths(text: &str) -> Vec<String> {
    let roots = [
        "src/",
        "tests/",
        "cli/",
        "benches/",
        "fuzz/",
        "examples/",
        "python/",
    ];
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| roots.iter().any(|r| span.starts_with(r)))
        .filter(|span| !span.contains(' ') && !span.contains('*') && !span.contains('<'))
        .map(|span| span.trim_end_matches(['.', ',', ':', ')']).to_string())
        .collect()
}

#[test]
fn every_file_the_docs_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in ["DESIGN.md", "README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for path in paths(&text) {
            // `tests/claims.rs` (`fn_name`) and the like name the file.
            let file = path.split(['(', '#']).next().unwrap_or(&path);
            checked += 1;
            if !root.join(file).exists() {
                missing.push(format!("{doc}: {file}"));
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} paths found: is the pattern right?"
    );
    assert!(missing.is_empty(), "named but missing: {missing:#?}");
}

#[test]
fn the_layout_table_names_every_source_file_or_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let design = std::fs::read_to_string(root.join("DESIGN.md")).unwrap();
    let table = design
        .split("## Source layout")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("DESIGN.md has a Source layout section");
    for entry in std::fs::read_dir(root.join("src")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let named = [format!("`{name}`"), format!("`{name}/`")]
            .iter()
            .any(|n| table.contains(n.as_str()));
        assert!(
            named || name == "lib.rs",
            "the layout table omits src/{name}"
        );
    }
}

//! Invariant: every tastypy name its docs and code use can be found from
//! tastypod: as a rustdoc search alias on its counterpart, and in README's
//! "Coming from tastypy" table.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn tastypy_names_are_aliases_of_their_counterparts() {
    let sources = [
        "src/pod/mod.rs",
        "src/tracker/mod.rs",
        "src/tracker/gates.rs",
        "src/tracker/changes.rs",
    ]
    .map(read)
    .concat();
    for (name, counterpart) in [
        ("POD", "pub struct Pod"),
        ("PersistentOrderedDict", "pub struct Pod"),
        ("ProgressTracker", "pub struct Tracker"),
        ("check", "pub fn done("),
        ("check_or_add", "pub fn should_do_add("),
        ("try_it", "pub fn should_try_add("),
        ("convert_to_tracker", "pub fn convert_pod("),
    ] {
        let alias = format!("#[doc(alias = \"{name}\")]");
        let at = sources
            .find(&alias)
            .unwrap_or_else(|| panic!("no alias {name}"));
        // The alias sits on the item's attributes, before its signature.
        let item = sources[at..]
            .find(counterpart)
            .map(|i| &sources[at..at + i]);
        let between = item.unwrap_or_else(|| panic!("{name} is not on {counterpart}"));
        assert!(
            !between.contains("pub fn ") && !between.contains("pub struct "),
            "the alias {name} is not on {counterpart}"
        );
    }
}

#[test]
fn readme_maps_every_tastypy_call() {
    let readme = read("README.md");
    let table = readme
        .split("## Coming from tastypy")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Coming from tastypy section");
    for name in [
        "POD(",
        "PersistentOrderedDict",
        "ProgressTracker",
        "check(",
        "check_or_add",
        "try_it",
        "should_do(",
        "should_try(",
        "convert_to_tracker",
        "try_keys",
        "mark_dirty",
        "sync_key",
        "allow_aborted",
        "import-tastypy",
        "export-tastypy",
    ] {
        assert!(table.contains(name), "the table does not mention {name}");
    }
}

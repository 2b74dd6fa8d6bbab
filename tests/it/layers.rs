//! The import graph of `src/` flows one way, as ARCHITECTURE.md ("Layers")
//! draws it: HTTP → pipeline → stages → records / publish → claims, config,
//! sources at the bottom. This reads every module's `crate::…` paths
//! (outside its `#[cfg(test)]` tests) and fails on a cycle or on an arrow
//! that runs back up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of `src/` and the top-level modules it uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "main" && m != "lib")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // A module's own tests may reach anywhere.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let used = graph.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(group.len())]
                    .split(',')
                    .map(|item| item.trim().split("::").next().unwrap_or("").trim())
                    .collect(),
                None => vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")],
            };
            for name in names {
                if name != top && modules.contains(name) {
                    used.insert(name.to_owned());
                }
            }
        }
    }
    graph
}

/// The modules each layer may use: its own layer and those below it, never
/// one above. Within a layer, arrows are allowed as long as there is no cycle.
const LAYERS: &[&[&str]] = &[
    &["ids", "lanes", "telemetry", "error", "sources"],
    &["config", "claims"],
    &["tls", "stage", "idempotency", "records"],
    &["auth", "ratelimit", "normalize", "publish"],
    // The live source table holds each source's rate bucket.
    &["pipeline", "reload"],
    &["ingress", "cli"],
    &["app"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("src/{module} is in no layer of tests/it/layers.rs: place it"))
}

#[test]
fn no_module_imports_one_from_a_layer_above() {
    let mut upward = Vec::new();
    for (module, used) in graph() {
        for dep in used {
            if layer_of(&dep) > layer_of(&module) {
                upward.push(format!("{module} -> {dep}"));
            }
        }
    }
    assert!(upward.is_empty(), "arrows running back up: {upward:?}");
}

#[test]
fn the_import_graph_has_no_cycle() {
    let graph = graph();
    // Kahn: strip modules that use nothing left; whatever remains is on a cycle.
    let mut left = graph.clone();
    loop {
        let done: Vec<String> = left
            .iter()
            .filter(|(_, used)| used.iter().all(|d| !left.contains_key(d)))
            .map(|(m, _)| m.clone())
            .collect();
        if done.is_empty() {
            break;
        }
        for m in done {
            left.remove(&m);
        }
    }
    assert!(
        left.is_empty(),
        "modules on an import cycle, or using one: {left:?}"
    );
}

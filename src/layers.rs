//! The engine's layers and the one import rule: a module imports (`crate::…`) only modules of
//! lower layers. So there is no import cycle, and each layer can be read and tested with only
//! what is below it. docs/ARCHITECTURE.md draws them; the test below keeps the code to it.
//!
//! `cargo test -p consumer-auth --lib layers -- --nocapture` prints every edge.

/// Lowest first. Each module is a top-level module of `src/` (a file or a folder).
const LAYERS: &[(&str, &[&str])] = &[
    ("leaves", &["error", "proxy", "crypto", "identity_headers", "time", "response"]),
    ("request and consumers", &["request", "consumers"]),
    ("identity and the header-map codec", &["identity", "wire"]),
    ("the shared consumer store", &["store"]),
    ("the plugins and their context", &["plugins"]),
    ("the configuration", &["config"]),
    ("the pipeline", &["pipeline"]),
    ("what each host needs done", &["host_kind"]),
    ("the glue (wasm32 only)", &["host"]),
];

mod tests {
    use super::LAYERS;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    fn layer_of(module: &str) -> Option<usize> {
        LAYERS.iter().position(|(_, modules)| modules.contains(&module))
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The modules a file's non-test code names as `crate::<module>`.
    fn imports(source: &str) -> BTreeSet<String> {
        // Unit tests (`mod tests { … }`, last in a file) may build their data with anything; the
        // rule is for the engine's code.
        let code = source.split("mod tests {").next().unwrap_or("");
        let mut found = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // `crate::MAX_BODY_BYTES` and the like: the crate root's constants, below everything.
            if !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_uppercase()) {
                found.insert(name);
            }
        }
        found
    }

    #[test]
    fn imports_point_down_only() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        let mut edges = BTreeSet::new();
        let mut wrong = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
            let module = first.trim_end_matches(".rs").to_string();
            if matches!(module.as_str(), "lib" | "layers") || relative.ends_with("tests.rs") {
                continue;
            }
            let from = layer_of(&module).unwrap_or_else(|| panic!("{module} is in no layer: add it to LAYERS"));
            for target in imports(&std::fs::read_to_string(file).unwrap()) {
                if target == module {
                    continue;
                }
                let to = layer_of(&target).unwrap_or_else(|| panic!("{target} is in no layer: add it to LAYERS"));
                edges.insert((from, module.clone(), to, target.clone()));
                if to >= from {
                    wrong.push(format!("{} imports {target} (layer {to} >= {from})", relative.display()));
                }
            }
        }
        for (from, module, to, target) in &edges {
            println!("{module} ({}) -> {target} ({})", LAYERS[*from].0, LAYERS[*to].0);
        }
        assert!(wrong.is_empty(), "imports that do not point down:\n{}", wrong.join("\n"));
    }
}

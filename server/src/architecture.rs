//! The server's layers (docs/architecture.md), held by a test: an import that goes the wrong way
//! fails it. From the top: the console (`main.rs`, `cli/`); the listeners and loops (`http.rs`,
//! `jobs.rs`); the routes (`routes/`); the shared state and extractors (`app.rs`); everything
//! else. A file may import only from its own layer or below.

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The layer of a file under `src/`, from the top (0), or `None` for files the rule skips.
    fn layer(rel: &str) -> Option<usize> {
        match rel {
            "lib.rs" | "architecture.rs" => None,
            "main.rs" => Some(0),
            _ if rel.starts_with("cli/") => Some(0),
            "http.rs" | "jobs.rs" => Some(1),
            _ if rel.starts_with("routes/") => Some(2),
            "app.rs" => Some(3),
            _ => Some(4),
        }
    }

    /// The layer of a top-level module of the crate, by name.
    fn module_layer(module: &str) -> usize {
        match module {
            "cli" => 0,
            "http" | "jobs" => 1,
            "routes" => 2,
            "app" => 3,
            _ => 4,
        }
    }

    /// The top-level modules `code` names through `crate::` (also inside `crate::{a, b::c}`, over
    /// several lines), outside comments.
    fn crate_imports(code: &str) -> Vec<String> {
        let mut out = Vec::new();
        let code: String = code
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        {
            let mut rest = code.as_str();
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap_or("");
                    for item in inner.split(',') {
                        let name: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() {
                            out.push(name);
                        }
                    }
                } else {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.push(name);
                }
            }
        }
        out
    }

    fn files(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }

    fn violations(sources: &[(String, String)]) -> Vec<String> {
        let mut bad = Vec::new();
        for (rel, code) in sources {
            let Some(own) = layer(rel) else { continue };
            for module in crate_imports(code) {
                if module_layer(&module) < own {
                    bad.push(format!("{rel} imports crate::{module}, a layer above it"));
                }
            }
        }
        bad.sort();
        bad.dedup();
        bad
    }

    #[test]
    fn imports_go_one_way() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut sources = Vec::new();
        files(&base, &base, &mut sources);
        assert!(sources.len() > 20, "read only {} files", sources.len());
        let bad = violations(&sources);
        assert!(
            bad.is_empty(),
            "imports that go the wrong way:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn a_wrong_import_is_caught_in_every_form() {
        let files = |code: &str| vec![("retention.rs".to_string(), code.to_string())];
        assert!(!violations(&files("use crate::app::Shared;")).is_empty());
        assert!(!violations(&files("use crate::{accounts, routes::web};")).is_empty());
        assert!(!violations(&files("fn f(s: crate::http::Listeners) {}")).is_empty());
        assert!(violations(&files("use crate::{accounts, db};\n// see crate::app")).is_empty());
        let app = vec![("app.rs".to_string(), "use crate::routes;".to_string())];
        assert!(!violations(&app).is_empty());
        let route = vec![(
            "routes/web.rs".to_string(),
            "use crate::cli::x;".to_string(),
        )];
        assert!(!violations(&route).is_empty());
    }
}

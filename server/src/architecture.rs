//! The server's layers (docs/architecture.md), held by a test: an import that goes the wrong way
//! fails it. From the top: the console (`main.rs`, `cli/`); the loops (`jobs/`); the HTTP layer
//! (`http/`); the operations (`ops/`); the store (`store/`); the rules and the settings
//! (`domain/`, `config.rs`). A file may import only from its own layer or below, nothing in
//! `domain/` names the database, HTTP or the async runtime, and SQL is written only in `store/`.

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The layer of a file under `src/`, from the top (0), or `None` for files the rule skips.
    fn layer(rel: &str) -> Option<usize> {
        match rel {
            "lib.rs" | "architecture.rs" => None,
            "main.rs" => Some(0),
            "config.rs" => Some(5),
            _ => Some(module_layer(rel.split('/').next().unwrap_or(rel))),
        }
    }

    /// The layer of a top-level module of the crate, by name.
    fn module_layer(module: &str) -> usize {
        match module {
            "cli" => 0,
            "jobs" => 1,
            "http" => 2,
            "ops" => 3,
            "store" => 4,
            "domain" | "config" | "config.rs" => 5,
            other => {
                panic!("{other} is in no layer: add it to architecture.rs and docs/architecture.md")
            }
        }
    }

    /// How SQL begins in a string literal; outside `store/` (and tests) none may.
    const SQL: [&str; 5] = [
        "\"SELECT ",
        "\"INSERT ",
        "\"UPDATE ",
        "\"DELETE ",
        "\"CREATE ",
    ];

    /// What the rules in `domain/` must never name: they are pure.
    const NOT_IN_DOMAIN: [&str; 4] = ["rusqlite", "axum", "tokio", "std::fs"];

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
            let code_only = code.split("#[cfg(test)]").next().unwrap_or(code);
            if !rel.starts_with("store/") {
                for sql in SQL {
                    if code_only.contains(sql) {
                        bad.push(format!(
                            "{rel} has SQL ({}...); it belongs in store/",
                            &sql[1..]
                        ));
                    }
                }
            }
            if rel.starts_with("domain/") {
                for name in NOT_IN_DOMAIN {
                    if code.contains(name) {
                        bad.push(format!("{rel} names {name}; the domain is pure"));
                    }
                }
            }
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
        let files = |rel: &str, code: &str| vec![(rel.to_string(), code.to_string())];
        assert!(!violations(&files("store/db.rs", "use crate::http::state::Shared;")).is_empty());
        assert!(!violations(&files(
            "store/db.rs",
            "use crate::{domain::clock, ops::export};"
        ))
        .is_empty());
        assert!(!violations(&files(
            "ops/export.rs",
            "fn f(s: crate::http::Listeners) {}"
        ))
        .is_empty());
        assert!(violations(&files(
            "ops/export.rs",
            "use crate::{store::db, domain::clock};\n// see crate::http"
        ))
        .is_empty());
        assert!(!violations(&files("http/state.rs", "use crate::cli::x;")).is_empty());
        assert!(!violations(&files("http/mod.rs", "use crate::jobs::sweep;")).is_empty());
        assert!(!violations(&files("domain/clock.rs", "use crate::store::db;")).is_empty());
        assert!(!violations(&files(
            "domain/clock.rs",
            "fn f(c: &rusqlite::Connection) {}"
        ))
        .is_empty());
        assert!(violations(&files("config.rs", "use crate::domain::network;")).is_empty());
        assert!(!violations(&files("config.rs", "use crate::store::blobs;")).is_empty());
        let sql = "fn f(c: &Connection) { c.execute(\"DELETE FROM users\", []); }";
        assert!(!violations(&files("http/routes/web.rs", sql)).is_empty());
        assert!(!violations(&files("ops/claim.rs", sql)).is_empty());
        assert!(violations(&files("store/accounts.rs", sql)).is_empty());
        let test_only = format!("fn g() {{}}\n#[cfg(test)]\nmod tests {{ {sql} }}");
        assert!(violations(&files("ops/sweep.rs", &test_only)).is_empty());
    }
}

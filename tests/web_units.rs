//! The web app's JavaScript unit tests (tests/web/*.test.mjs that need no browser), run with node's own test
//! runner, and a check that every ES module of the app is served and kept by the service worker for offline use.
//! The unit tests are skipped with a message where node is missing; under `CI=true` its absence fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit test files: run without a browser, a server or npm packages.
const UNITS: &[&str] = &["tests/web/markdown.test.mjs"];

#[test]
fn the_markdown_renderer_passes_its_unit_tests() {
    if Command::new("node").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "web_units: node is required in CI"
        );
        return common::skip("web_units::markdown", "node is missing");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The files are named, so that `node --test` does not also pick up the browser tests beside them.
    let out = Command::new("node")
        .arg("--test")
        .args(UNITS)
        .current_dir(&root)
        .output()
        .expect("run node --test");
    assert!(
        out.status.success(),
        "node --test failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The app's modules: every `.js` file in assets/ but the service worker.
fn modules(assets: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(assets)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".js") && n != "sw.js")
        .collect();
    names.sort();
    names
}

#[test]
fn every_module_is_served_imported_and_kept_offline() {
    let assets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets");
    let names = modules(&assets);
    assert!(names.contains(&"app.js".to_string()), "{names:?}");
    let sw = std::fs::read_to_string(assets.join("sw.js")).unwrap();
    let index = std::fs::read_to_string(assets.join("index.html")).unwrap();
    // Imported as the page loads (app.js is the page's script), and imported only when first needed.
    let mut eager: Vec<String> = vec!["app.js".into()];
    let mut lazy: Vec<String> = Vec::new();
    for name in &names {
        let text = std::fs::read_to_string(assets.join(name)).unwrap();
        // `import … from './x.js'` at load, or `import('./x.js')` when first needed.
        for (marker, at_load) in [(" from './", true), ("import('./", false)] {
            for line in text.lines().filter(|l| l.contains(marker)) {
                let dep = line.split(marker).nth(1).unwrap();
                let dep = dep.split('\'').next().unwrap();
                assert!(
                    names.iter().any(|n| n == dep),
                    "{name} imports ./{dep}, which is not in assets/"
                );
                let list = if at_load { &mut eager } else { &mut lazy };
                list.push(dep.to_string());
            }
        }
    }
    for name in &names {
        // Offline, a reload needs every module from the service worker's cache.
        assert!(
            sw.contains(&format!("'/{name}'")),
            "sw.js does not cache /{name}"
        );
        // The page names each one it loads at once, so the browser fetches them together (app.js as the script
        // itself); one imported only when first needed is not fetched with the page.
        let preloaded = index.contains(&format!("href=\"/{name}\""));
        if eager.contains(name) {
            assert!(
                preloaded || name == "app.js",
                "index.html does not preload /{name}"
            );
        } else {
            // No module lies unused.
            assert!(lazy.contains(name), "nothing imports {name}");
            assert!(
                !preloaded,
                "index.html preloads /{name}, which is loaded only when needed"
            );
        }
    }
    assert!(
        index.contains("<script type=\"module\" src=\"/app.js\"></script>"),
        "index.html loads app.js as a module"
    );

    // The server sends each one as JavaScript (a module script of another type is refused by the browser).
    let server = common::Server::start();
    for name in &names {
        let r = server.request("GET", &format!("/{name}"), &[], b"");
        assert_eq!(r.status, 200, "/{name}");
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("text/javascript"),
            "/{name}"
        );
        assert_eq!(r.body, std::fs::read(assets.join(name)).unwrap(), "/{name}");
    }
}

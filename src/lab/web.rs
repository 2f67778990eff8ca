//! What `vpt lab` serves of the browser build: the pages `/train` and `/check` (`web/*.html`,
//! `web/*.js`, embedded in the binary), the package `bash web/build.sh` wrote (`web/pkg/`, read
//! at start), and the bundled demo (`fixtures/demo`: the backbone and the digits' training
//! folder, with a list of its files at `/demo/train.json`), which `/train?demo=1` trains on.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use super::server::SiteFile;
use crate::error::{Error, Result};

const PAGES: [(&str, &str, &str); 5] = [
    ("/train", "text/html; charset=utf-8", include_str!("../../web/train.html")),
    ("/train.js", "text/javascript; charset=utf-8", include_str!("../../web/train.js")),
    ("/check", "text/html; charset=utf-8", include_str!("../../web/check.html")),
    ("/check.js", "text/javascript; charset=utf-8", include_str!("../../web/check.js")),
    ("/web.css", "text/css; charset=utf-8", include_str!("../../web/web.css")),
];

/// The package's two files, as `web/build.sh` names them.
const PACKAGE: [(&str, &str); 2] = [("vpt_web.js", "text/javascript; charset=utf-8"), ("vpt_web_bg.wasm", "application/wasm")];

/// The largest file of the package or the demo read (the wasm is about 2 MB).
const MAX_FILE_BYTES: u64 = 256 << 20;

/// Where `web/build.sh` puts the package: `web/pkg` under the current directory or the crate.
pub fn default_package_dir() -> PathBuf {
    crate::io::bundled("web/pkg")
}

/// The browser build's files: the pages always; the package from `package_dir` and the demo
/// from `demo_dir` where they are. Also what is missing, for the user: without the package the
/// pages say to build it.
pub fn browser_files(package_dir: &Path, demo_dir: &Path) -> Result<(Vec<SiteFile>, Vec<String>)> {
    let mut files: Vec<SiteFile> = PAGES.iter().map(|&(path, content_type, text)| SiteFile { path: path.into(), content_type, bytes: Cow::Borrowed(text.as_bytes()) }).collect();
    let mut missing = Vec::new();
    if package_dir.join(PACKAGE[1].0).is_file() {
        for (name, content_type) in PACKAGE {
            files.push(SiteFile { path: format!("/pkg/{name}"), content_type, bytes: Cow::Owned(read(&package_dir.join(name))?) });
        }
    } else {
        missing.push(format!("no browser package in {}: /train and /check need it; build it with `bash web/build.sh`", package_dir.display()));
    }
    match demo_files(demo_dir) {
        Ok(demo) => files.extend(demo),
        Err(e) => missing.push(format!("no demo for /train?demo=1: {e}")),
    }
    Ok((files, missing))
}

/// The demo's backbone, its training images under `/demo/train/CLASS/FILE`, and their list.
fn demo_files(demo_dir: &Path) -> Result<Vec<SiteFile>> {
    let backbone = demo_dir.join("backbone.safetensors");
    let mut files = vec![SiteFile { path: "/demo/backbone.safetensors".into(), content_type: "application/octet-stream", bytes: Cow::Owned(read(&backbone)?) }];
    let root = demo_dir.join("digits-5to9/train");
    let mut listed = Vec::new();
    for class in sorted_entries(&root)? {
        for file in sorted_entries(&root.join(&class))? {
            let relative = format!("{class}/{file}");
            files.push(SiteFile { path: format!("/demo/train/{relative}"), content_type: "application/octet-stream", bytes: Cow::Owned(read(&root.join(&relative))?) });
            listed.push(relative);
        }
    }
    let list = serde_json::json!({ "root": "digits-5to9/train", "files": listed });
    files.push(SiteFile { path: "/demo/train.json".into(), content_type: "application/json", bytes: Cow::Owned(list.to_string().into_bytes()) });
    Ok(files)
}

/// The names in a folder, sorted; only plain names (letters, digits, '-', '_', '.'), which a URL
/// carries as they are.
fn sorted_entries(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
    let mut names: Vec<String> =
        entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| !n.starts_with('.') && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))).collect();
    names.sort();
    Ok(names)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    crate::io::read_regular_file(path, MAX_FILE_BYTES).map_err(|why| Error::invalid("web", format!("{}: it {why}", path.display())))
}

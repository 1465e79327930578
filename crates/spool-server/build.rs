//! Bundles the share page's player library into the binary: hls.js, from
//! the npm package pinned in `web/package.json` (installed into
//! `web/node_modules` by `scripts/setup.sh web`), is copied into OUT_DIR,
//! where `src/share/assets.rs` `include_bytes!`s it. Nothing is fetched at
//! build or run time, so the page works offline.

use std::path::PathBuf;

const HLS: &str = "web/node_modules/hls.js/dist/hls.light.min.js";

fn main() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(HLS);
    println!("cargo:rerun-if-changed={HLS}");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    println!("cargo:rerun-if-changed=build.rs");
    let bytes = match std::fs::read(&src) {
        Ok(b) => b,
        Err(e) => panic!(
            "\n\nspool-server bundles hls.js into the share page, and {} is missing ({e}).\n\
             Install the share page's npm packages first: run `scripts/setup.sh web`\n\
             (every make target that builds the server does).\n",
            src.display()
        ),
    };
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        panic!("OUT_DIR is not set: build.rs runs under cargo");
    };
    let out = PathBuf::from(out_dir).join("hls.light.min.js");
    if std::fs::read(&out).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(&out, &bytes).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    }
}

//! The page's weight budget: the built wasm, gzipped, stays under [`WASM_GZIP_BUDGET`].
//!
//! Runs on the host against `dist/`, which `make test` builds (`trunk build --release`)
//! before the host tests. Growth past the budget is then a decision (raise it here, and say
//! why in the commit and in docs/architecture.md), not an accident.
#![cfg(not(target_arch = "wasm32"))]

use std::{fs, path::PathBuf, process::Command};

/// The most the page's wasm may weigh after `gzip -9`, in bytes (80 KB).
const WASM_GZIP_BUDGET: usize = 80_000;

#[test]
fn the_pages_wasm_fits_its_budget() {
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist");
    let wasm: Vec<PathBuf> = fs::read_dir(&dist)
        .unwrap_or_else(|e| panic!("{}: {e}: build the page with `make dist`", dist.display()))
        .map(|entry| entry.expect("a readable dist/ entry").path())
        .filter(|path| path.to_string_lossy().ends_with("_bg.wasm"))
        .collect();
    let [wasm] = wasm.as_slice() else {
        panic!("expected one *_bg.wasm in {}, found {wasm:?}: run `make dist`", dist.display())
    };
    let raw = fs::metadata(wasm).expect("the built wasm is readable").len();
    // gzip itself, not a Rust deflate: its figure is the one docs/architecture.md gives
    // and anyone can reproduce (flate2's best compression came out 1 KB larger).
    let gzip = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(wasm)
        .output()
        .expect("gzip runs (Debian's essential gzip package)");
    assert!(gzip.status.success(), "gzip -9 failed: {}", String::from_utf8_lossy(&gzip.stderr));
    let gzipped = gzip.stdout.len();
    assert!(
        gzipped <= WASM_GZIP_BUDGET,
        "{} is {gzipped} bytes gzipped ({} raw), over the page's budget of {WASM_GZIP_BUDGET}. \
         Is it a release build (`make dist`)? To see where the bytes go, build with names kept \
         and run `twiggy top -n 40` and `twiggy dominators` on it (docs/architecture.md, \
         \"The page's weight\").",
        wasm.display(),
        raw,
    );
}

//! Builds every guest program under `test-programs/`: the Rust binaries for
//! wasm32-wasip1 (core modules) and wasm32-wasip2 (components), and the
//! hand-written `.wat` files; then writes `artifacts.rs` with one constant per
//! artifact (plus one per `examples/` guest the host tests run) and a
//! `foreach_guest!` macro that tests use to prove each guest has a host test.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `examples/` guests the host tests run: `(binary, crate directory)`,
/// all for wasm32-wasip2.
const EXAMPLES: [(&str, &str); 6] = [
    ("state-demo", "examples/state-demo"),
    ("http-counter", "examples/http-counter"),
    ("invoke-pair-greeter", "examples/invoke-pair"),
    ("invoke-pair-caller", "examples/invoke-pair"),
    ("order-pipeline-processor", "examples/order-pipeline"),
    ("order-pipeline-publisher", "examples/order-pipeline"),
];

/// Prefixes of the `test-programs` binaries built only for wasm32-wasip2:
/// `http_*` send requests through `wasi:http`, `serve_*` are
/// `wasi:http/incoming-handler` components, `bench_*` and `dapr_*` call the
/// Dapr imports.
const P2_ONLY: [&str; 4] = ["http_", "serve_", "bench_", "dapr_"];

const TARGETS: [(&str, &str); 2] = [("p1", "wasm32-wasip1"), ("p2", "wasm32-wasip2")];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let programs = manifest_dir
        .join("../../test-programs")
        .canonicalize()
        .unwrap();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", programs.join("src").display());
    println!("cargo:rerun-if-changed={}", programs.join("wat").display());
    println!(
        "cargo:rerun-if-changed={}",
        programs.join("Cargo.toml").display()
    );

    let mut artifacts: Vec<(String, PathBuf)> = Vec::new();
    let mut example_artifacts: Vec<(String, PathBuf)> = Vec::new();

    let bins = names_with_extension(&programs.join("src/bin"), "rs");
    // A target directory of its own: sharing the workspace's would deadlock
    // on cargo's build lock, which the outer build holds.
    let target_dir = out_dir.join("target");
    for (prefix, target) in TARGETS {
        let status = guest_cargo(&target_dir, target, &programs.join("Cargo.toml"))
            .status()
            .expect("running cargo to build test-programs");
        assert!(
            status.success(),
            "building test-programs for {target} failed; if the target is missing, \
             run `scripts/setup.sh` (it runs `rustup target add {target}`)"
        );
        for bin in &bins {
            // `wasi:http` exists only for components: programs that send
            // or serve HTTP have no preview 1 build worth testing.
            if prefix == "p1" && P2_ONLY.iter().any(|p2| bin.starts_with(p2)) {
                continue;
            }
            let wasm = target_dir
                .join(target)
                .join("release")
                .join(format!("{bin}.wasm"));
            assert!(wasm.exists(), "cargo built no {}", wasm.display());
            artifacts.push((format!("{prefix}_{bin}"), wasm));
        }
    }

    // The examples that exercise the host as a user would: built with the
    // root workspace's lock file, named `EXAMPLE_<NAME>`. They are not in
    // `foreach_guest!` (that is for `test-programs/`); each has its own suite.
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    for dir in [
        "wit",
        "crates/wasmdapr-sdk/src",
        "examples/state-demo/src",
        "examples/invoke-pair/src",
        "examples/http-counter/src",
        "examples/order-pipeline/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for (name, crate_dir) in EXAMPLES {
        let target = "wasm32-wasip2";
        let status = guest_cargo(
            &target_dir,
            target,
            &root.join(crate_dir).join("Cargo.toml"),
        )
        .args(["--bin", name])
        .status()
        .expect("running cargo to build the examples");
        assert!(status.success(), "building {crate_dir} for {target} failed");
        let wasm = target_dir
            .join(target)
            .join("release")
            .join(format!("{name}.wasm"));
        assert!(wasm.exists(), "cargo built no {}", wasm.display());
        example_artifacts.push((format!("example_{}", name.replace('-', "_")), wasm));
    }

    for name in names_with_extension(&programs.join("wat"), "wat") {
        let source = programs.join("wat").join(format!("{name}.wat"));
        let wasm = wat::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        let path = out_dir.join(format!("{name}.wasm"));
        fs::write(&path, wasm).unwrap();
        artifacts.push((name, path));
    }

    let mut code = String::new();
    for (name, path) in artifacts.iter().chain(&example_artifacts) {
        writeln!(
            code,
            "/// The built guest `{name}`.\npub const {}: &str = {:?};",
            name.to_uppercase(),
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str(
        "/// Calls `$mac!(name)` for every guest, so a test module can assert each has a test.\n\
         #[macro_export]\nmacro_rules! foreach_guest {\n    ($mac:ident) => {\n",
    );
    for (name, _) in &artifacts {
        writeln!(code, "        $mac!({name});").unwrap();
    }
    code.push_str("    };\n}\n");
    fs::write(out_dir.join("artifacts.rs"), code).unwrap();
}

/// `cargo build --release` of the guests of `manifest` for `target`.
fn guest_cargo(target_dir: &Path, target: &str, manifest: &Path) -> Command {
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .arg("build")
        .arg("--release")
        .arg("--quiet")
        .arg("--target")
        .arg(target)
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", target_dir);
    // The outer build's flags and wrappers (clippy, coverage) are for
    // host code, not for guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cargo.env_remove(var);
    }
    cargo
}

fn names_with_extension(dir: &Path, extension: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

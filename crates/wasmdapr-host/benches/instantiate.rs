//! Instantiate + run of a trivial WASI preview 2 component (and a preview 1
//! module) from a precompiled artifact, with the pooling allocator and with
//! on-demand allocation as the baseline measured in the same run.
//!
//! `bench/run.sh` runs this and writes the figures into `bench/RESULTS.md`.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmdapr_host::{Capabilities, EngineConfig, Host, HostConfig, Limits, Output};
use wasmdapr_runtime::AppId;

fn bench_instantiate(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let caps = Capabilities {
        program_name: "trivial".into(),
        stdout: Output::Null,
        stderr: Output::Null,
        ..Capabilities::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let id = AppId::new("trivial").unwrap();
    let mut group = c.benchmark_group("instantiate_and_run");
    for (kind, wasm) in [
        ("p2_component", test_programs_artifacts::P2_CLI_TRIVIAL),
        ("p1_module", test_programs_artifacts::P1_CLI_TRIVIAL),
    ] {
        for (allocator, pooling) in [("pooling", true), ("on_demand", false)] {
            let host = Host::new(HostConfig {
                engine: EngineConfig {
                    pooling,
                    ..EngineConfig::default()
                },
                cache: None,
            })
            .unwrap();
            let cwasm = dir.path().join(format!("{kind}-{allocator}.cwasm"));
            std::fs::write(&cwasm, host.precompile(Path::new(wasm)).unwrap()).unwrap();
            let app = host.load(&cwasm, &id).unwrap();
            group.bench_function(format!("{kind}/{allocator}"), |b| {
                b.iter(|| {
                    let code = runtime.block_on(app.run(&caps, Limits::default())).unwrap();
                    assert_eq!(code, 0);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_instantiate);
criterion_main!(benches);

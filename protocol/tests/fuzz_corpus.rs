//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and the seeds through the fuzz targets'
//! own checks, so CI on stable catches a regression on any input the fuzzer once found
//! interesting, without nightly or libFuzzer. See `fuzz/README.md`.

use std::path::{Path, PathBuf};

// The targets' checks, shared with the libFuzzer binaries: the file uses only
// `steward_protocol` and `bytes`, so it compiles here as a module.
#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_input_passes_its_target() {
    for (target, run) in harness::TARGETS {
        let dir = corpus_dir(target);
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        let mut replayed = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let input =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            // A panic names the target and the file, to rerun it with `cargo fuzz run`.
            let outcome = std::panic::catch_unwind(|| run(&input));
            assert!(outcome.is_ok(), "{target} fails on {}", path.display());
            replayed += 1;
        }
        assert!(replayed > 0, "{} is empty", dir.display());
    }
}

#[test]
fn seeds_pass_their_targets() {
    for (target, run) in harness::TARGETS {
        for seed in harness::seeds::seeds(target) {
            run(&seed);
        }
    }
}

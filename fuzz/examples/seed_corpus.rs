//! Writes the seeds of every target into `corpus/<target>/seed-<n>`:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, run) in steward_fuzz::TARGETS {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        let seeds = steward_fuzz::seeds::seeds(target);
        for (n, seed) in seeds.iter().enumerate() {
            // A seed the target rejects would be a broken seed, not a finding.
            run(seed);
            std::fs::write(dir.join(format!("seed-{n}")), seed)?;
        }
        println!("{target}: {} seeds", seeds.len());
    }
    Ok(())
}

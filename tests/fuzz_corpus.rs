//! The fuzz targets (`fuzz/`, run with `cargo fuzz run NAME`) in the test suite: every file of
//! their committed corpus, then 10,000 seeded mutations of it (bit flips, cuts,
//! splices), each of which must be answered without a panic. A smoke run of seconds; the long
//! runs are `cargo fuzz` (see fuzz/README.md).

mod common;

use kvpacket::fuzzing::{TARGETS, run, tokenizer};
use kvpacket::model::tiny::TinySpec;
use kvpacket::model::{Model, WeightMode};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|_| panic!("no corpus for {target} in {}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus for {target}");
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// A mutation of one corpus entry (or a splice of two).
fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..5) {
            0 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !d.is_empty() => d.truncate(rng.random_range(0..d.len())),
            2 if !d.is_empty() => {
                let i = rng.random_range(0..d.len());
                d[i] = [0u8, 0xff, b'"', b'{', b'[', b'9'][rng.random_range(0..6)];
            }
            3 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let cut = rng.random_range(0..=other.len());
                let at = rng.random_range(0..=d.len());
                d.splice(at..at, other[cut..].iter().copied());
            }
            _ => {
                let i = rng.random_range(0..=d.len());
                let n = rng.random_range(1..16);
                d.splice(i..i, (0..n).map(|_| rng.random::<u8>()));
            }
        }
    }
    d
}

#[test]
fn every_target_survives_its_corpus_and_mutations_of_it() {
    for target in TARGETS {
        let seeds = corpus(target);
        for s in &seeds {
            run(target, s);
        }
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..10_000 {
            run(target, &mutate(&mut rng, &seeds));
        }
    }
}

#[test]
fn the_tokenizer_survives_its_corpus_and_mutations_of_it() {
    let m = Model::load(
        &common::tiny_model("fuzz_corpus", "model", TinySpec::default()),
        WeightMode::F32,
    )
    .unwrap();
    let seeds = corpus("tokenizer");
    let mut rng = StdRng::seed_from_u64(2);
    for s in seeds
        .iter()
        .cloned()
        .chain((0..10_000).map(|_| mutate(&mut rng, &seeds)))
    {
        tokenizer(&m, &s);
    }
}

//! The cargo-fuzz targets (fuzz/fuzz_targets/, bodies in
//! fuzz/src/targets.rs) as ordinary tests, on stable Rust:
//!
//! - every input in `fuzz/regressions/<target>/` — each one an input that
//!   once crashed a target, copied there by reliability/fuzz/cargo-fuzz.sh —
//!   and every seed in `fuzz/seeds/<target>/`;
//! - a few thousand deterministic mutations of the seeds (bit flips, byte
//!   insertions and deletions, dictionary tokens), so a CI run without
//!   nightly still fuzzes a little.
//!
//! A target body panics when an invariant breaks; a panic is a failure.

#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    out.sort();
    out
}

/// Dictionary tokens (fuzz/dict/<target>.dict): `"..."` lines, with `\xNN`
/// and `\"` escapes.
fn dictionary(target: &str) -> Vec<Vec<u8>> {
    let path = fuzz_dir().join("dict").join(format!("{target}.dict"));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')?
                .strip_suffix('"')
                .map(str::to_owned)
        })
        .map(|t| {
            let mut out = Vec::new();
            let b = t.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'\\' && i + 1 < b.len() {
                    if b[i + 1] == b'x' && i + 3 < b.len() {
                        let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap());
                        i += 4;
                        continue;
                    }
                    out.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                out.push(b[i]);
                i += 1;
            }
            out
        })
        .collect()
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, dict: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let pos = rng.below(input.len() + 1);
        match rng.below(5) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(pos, rng.next() as u8),
            2 if !input.is_empty() => {
                let end = (pos + 1 + rng.below(8)).min(input.len());
                input.drain(pos.min(end)..end);
            }
            3 if !dict.is_empty() => {
                let token = &dict[rng.below(dict.len())];
                input.splice(pos..pos, token.iter().copied());
            }
            _ => {
                let alphabet = b"{}[]\":,.=@ -+0123456789eE:T";
                input.insert(pos, alphabet[rng.below(alphabet.len())]);
            }
        }
    }
}

fn run(target: &str, body: fn(&[u8]), mutations: usize) {
    let mut failures = Vec::new();
    let mut check = |what: String, data: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| body(data))).is_err() {
            failures.push(format!("{what}: {:?}", String::from_utf8_lossy(data)));
        }
    };
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    let seeds = files(&fuzz_dir().join("seeds").join(target));
    assert!(!seeds.is_empty(), "no seeds for {target}");
    for (path, data) in regressions.iter().chain(&seeds) {
        check(path.display().to_string(), data);
    }
    let dict = dictionary(target);
    let mut rng = Rng(0x5eed_0000 ^ target.len() as u64);
    for i in 0..mutations {
        let mut input = seeds[i % seeds.len()].1.clone();
        mutate(&mut rng, &mut input, &dict);
        check(format!("mutation {i}"), &input);
    }
    assert!(
        failures.is_empty(),
        "{target}: {} failing inputs (add each to fuzz/regressions/{target}/):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn signature_header_regressions_and_mutations() {
    run("signature_header", targets::signature_header, 2000);
}

#[test]
fn plaintext_regressions_and_mutations() {
    run("plaintext", targets::plaintext, 5000);
}

#[test]
fn normalize_regressions_and_mutations() {
    run("normalize", targets::normalize, 5000);
}

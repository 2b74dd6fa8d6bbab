#!/usr/bin/env bash
# Campaign 7 (bad input at scale), part 2: coverage-guided fuzzing of the
# gateway's parsers with cargo-fuzz (libFuzzer + AddressSanitizer).
#
# Targets (fuzz/fuzz_targets/, bodies in fuzz/src/targets.rs):
#   signature_header  X-Signature (src/auth/signature.rs) and webhook-signature
#                     (src/auth/standard.rs): parse, verify, sign/verify round trip
#   plaintext         TradingView plain text (src/normalize/plaintext.rs)
#   normalize         the normalizer (src/normalize/): any body, both source kinds
#
# Each target runs FUZZ_SECONDS (default 60) from fuzz/seeds/<target> plus the
# corpus it grew before (fuzz/corpus/<target>, git-ignored), with the
# dictionary fuzz/dict/<target>.dict. A crash (or timeout, or OOM) is copied
# to fuzz/regressions/<target>/, where tests/it/fuzz_regressions.rs feeds it to
# the same target body on stable Rust: it becomes a regression test at once.
#
#   bash reliability/fuzz/cargo-fuzz.sh                    # 60 s per target
#   FUZZ_SECONDS=10 TARGETS=normalize bash reliability/fuzz/cargo-fuzz.sh
#
# Toolchain: cargo-fuzz needs nightly. A nightly toolchain is used if rustup
# has one (or can install one); otherwise stable with RUSTC_BOOTSTRAP=1,
# which lets stable rustc accept the -Z flags cargo-fuzz passes.
# Exit status: 0 when no target crashed, 1 otherwise.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FUZZ="$REPO/fuzz"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
TARGETS="${TARGETS:-signature_header plaintext normalize}"
REPORT_DIR="$REPO/target/fuzz-reports/cargo-fuzz"
mkdir -p "$REPORT_DIR"
log() { echo "cargo-fuzz: $*" >&2; }

# --- toolchain -------------------------------------------------------------
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
  log "using $(rustc +nightly --version)"
elif timeout 300 rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
  toolchain=(+nightly)
  log "installed $(rustc +nightly --version)"
else
  export RUSTC_BOOTSTRAP=1
  log "no nightly toolchain: stable $(rustc --version | cut -d' ' -f2) with RUSTC_BOOTSTRAP=1"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# --- build once --------------------------------------------------------------
cd "$FUZZ"
log "building the targets (release, debug assertions, AddressSanitizer)"
cargo "${toolchain[@]}" fuzz build -O --debug-assertions

# --- run each target -----------------------------------------------------------
crashed=0
summary="$REPORT_DIR/summary.txt"
: >"$summary"
for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t" "regressions/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  dict=()
  [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  log "$t: ${FUZZ_SECONDS}s"
  set +e
  # The outer timeout is a backstop: -max_total_time bounds the run.
  timeout -k 10 $((FUZZ_SECONDS + 120)) \
    cargo "${toolchain[@]}" fuzz run -O --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "${dict[@]}" >"$REPORT_DIR/$t.log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$REPORT_DIR/$t.log" | grep -o '[0-9]*$' | tail -n1)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$REPORT_DIR/$t.log" | grep -o '[0-9]*$' | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$REPORT_DIR/$t.log" | tail -n1 | grep -o '[0-9]*')
  corpus=$(find "corpus/$t" -type f | wc -l)
  after=$(find "artifacts/$t" -type f | wc -l)
  new_artifacts=$((after - before))
  line="$t: rc=$rc runs=${runs:-?} exec/s=${speed:-?} cov=${cov:-?} corpus=$corpus new-artifacts=$new_artifacts"
  echo "$line" | tee -a "$summary"
  if [ "$rc" != 0 ] || [ "$new_artifacts" -gt 0 ]; then
    crashed=1
    grep -m1 -A12 -E "panicked|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY" "$REPORT_DIR/$t.log" >&2 || tail -n 30 "$REPORT_DIR/$t.log" >&2
    for f in artifacts/"$t"/*; do
      [ -f "$f" ] || continue
      name="$(basename "$f")"
      if [ ! -f "regressions/$t/$name" ]; then
        cp "$f" "regressions/$t/$name"
        log "$t: crash input saved as fuzz/regressions/$t/$name (run: cargo nextest run fuzz_regressions::)"
      fi
    done
  fi
done
log "summary in $summary; per-target logs in $REPORT_DIR"
[ "$crashed" = 0 ] || { log "FAILED: a target crashed; its input is now a regression test"; exit 1; }
log "passed"

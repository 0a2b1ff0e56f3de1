#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each). Needs a nightly toolchain
# and cargo-fuzz (`cargo install cargo-fuzz`). New corpus entries go to target/corpus-work/
# (ignored by git); the committed seeds in corpus/ are only read.
#
#   fuzz/run.sh            # 60 s per target
#   fuzz/run.sh 600        # 10 min per target
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${1:-60}
for target in parse_list project_id; do
    mkdir -p "target/corpus-work/$target"
    echo "== fuzz $target for ${seconds}s"
    cargo +nightly fuzz run -O "$target" "target/corpus-work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 | tail -n 25
done

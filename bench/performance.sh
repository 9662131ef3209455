#!/usr/bin/env bash
# The measurements behind docs/performance.md and the README's speed table, one JSON line each,
# tagged with the bench that printed it: training-step speed of each backend next to the PyTorch
# peer at 1 and 2 threads (run in turn, round after round, so that each ratio is taken in the same
# minutes: this kind of shared machine drifts), the 256x256 VAE-GAN, data-parallel scaling, the
# all-reduce and the loader. The first line describes the machine and commit.
# `node --import tsx bench/performance-doc.ts FILE` turns the output into the page.
#
# Usage: bash bench/performance.sh [ROUNDS] > perf.jsonl     (ROUNDS default 3)
# The peer is ../shared/peer/run.sh beside the checkout, or MEDVAE_PEER; it needs python3-torch
# (apt-get install -y python3-torch libopenblas0-openmp). Without it the peer rows are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
peer=${MEDVAE_PEER:-../shared/peer/run.sh}
step=(node --import tsx bench/step.ts)

# Prefixes each JSON line of a command's output with "bench": NAME; other output goes to stderr.
tag() {
  local name=$1
  shift
  "$@" | while IFS= read -r line; do
    if [[ $line == \{* ]]; then printf '{"bench":"%s",%s\n' "$name" "${line#\{}"; else printf '%s\n' "$line" >&2; fi
  done
}

node -e '
const os = require("node:os");
const commit = require("node:child_process").execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
console.log(JSON.stringify({ bench: "meta", commit, date: new Date().toISOString(), machine: { os: `${os.type()} ${os.release()} ${os.arch()}`,
  cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? "unknown", memory_gb: Number((os.totalmem() / 2 ** 30).toFixed(1)), node: process.version } }));'

have_native=1
"${step[@]}" --model vae --size 32 --batch 4 --backend native --steps 1 >/dev/null 2>&1 || have_native=0
have_peer=1
bash "$peer" --model vae --image-size 64 --batch 8 --threads 1 --steps 1 --warmup 0 >/dev/null 2>&1 || have_peer=0
[ $have_native = 1 ] || echo "performance: the native backend does not load here; its rows are left out" >&2
[ $have_peer = 1 ] || echo "performance: no PyTorch peer ($peer; apt-get install -y python3-torch libopenblas0-openmp); its rows are left out" >&2

for round in $(seq 1 "$rounds"); do
  for model in vae mssim vaegan; do
    for threads in 1 2; do
      [ $have_native = 1 ] && tag step "${step[@]}" --model $model --size 64 --batch 64 --backend native --threads $threads --steps 5
      [ $have_peer = 1 ] && tag peer bash "$peer" --model $model --image-size 64 --batch 64 --threads $threads --steps 10
    done
    [ "$round" = 1 ] && tag step "${step[@]}" --model $model --size 64 --batch 64 --backend wasm --steps 5
  done
done
for model in beta cvae joint; do
  tag step "${step[@]}" --model $model --size 64 --batch 64 --backend auto --steps 5
done

# The 256x256 VAE-GAN at the peer's batch: speed and peak memory.
[ $have_native = 1 ] && tag step "${step[@]}" --model vaegan --size 256 --batch 16 --backend native --threads 2 --steps 3
[ $have_peer = 1 ] && tag peer bash "$peer" --model vaegan --image-size 256 --batch 16 --threads 2 --steps 5
tag step "${step[@]}" --model vaegan --size 256 --batch 4 --backend wasm --steps 3

tag dist node --import tsx bench/dist.ts --model vae --size 64 --batch 64 --workers 1,2 --steps 10
tag allreduce node --import tsx bench/allreduce.ts --mb 16,64 --workers 2
loader_root=$(mktemp -d)
trap 'rm -rf "$loader_root"' EXIT
tag loader node --import tsx bench/loader.ts --dataset gleason --root "$loader_root" --size 256 --batch 64 --threads 2 --make-synthetic 640

#!/usr/bin/env bash
# The VAE-GAN ablation behind configs/vae_gan_retinamnist.yaml: the model as it was, then each
# change added in turn, trained for the same short budget on the bundled RetinaMNIST at 32x32 (a
# quarter of the 64x64 cost, so every row fits in minutes), each evaluated on all 400 test images.
# Every row runs the code of a fixed commit (a git worktree each), so the table can be re-made later.
# Each row's label, commit and settings go to its ablation.json; bench/results-table.ts prints the
# numbers, one JSON line per row, then a table.
#
# TABLE learn (the default) is that table, rows row0...; TABLE prior is the table of the VAE-GAN's
# prior draws (issue #27), rows prior0..., each also measured by bench/prior-holes.ts (holes.json);
# bench/vae-gan-prior-doc.ts writes it into docs/vae-gan.md.
#
# Usage: bash bench/vae-gan-ablation.sh [STEPS] [OUT_DIR] [TABLE]   (defaults: 300, runs/vae-gan-ablation, learn)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
out=${2:-runs/vae-gan-ablation}
table=${3:-learn}
mkdir -p "$out"
root=$(pwd)
# Commits: the VAE-GAN before this work, with only the one-pass change, and with all of them.
before=adce924
one_pass=de42bce
changes=664cb40
small=(--set model.image_size=32 --set 'model.hidden_dims=[32, 64, 128, 256]' --set model.feature_layer=3)
common=(--config configs/vae_retinamnist.yaml --set model.name=vae_gan --set train.lr=0.0003 --set train.scheduler_gamma=1
  "${small[@]}" --max-steps "$steps" --log-format plain --metrics-port 0)
paper=(--set model.kld_weight=1 --set model.recon_gamma=1)

# label | commit | extra settings
learn_rows=(
  "before: three discriminator passes, mean feature MSE, gamma 1e-3|$before|"
  "+ one decoder and one discriminator pass|$one_pass|"
  "+ per-image Gaussian feature likelihood, KL weight 1, gamma 1|$changes|${paper[*]} --set model.gan_margin=0"
  "+ balanced game (margin 0.35)|$changes|${paper[*]} --set model.gan_margin=0.35"
  "+ pixel likelihood (weight 10), gamma 0.01 (the config)|$changes|--set model.kld_weight=1 --set model.recon_gamma=0.01 --set model.gan_margin=0.35 --set model.pixel_weight=10"
  "the config without the balanced game (margin 0)|$changes|--set model.kld_weight=1 --set model.recon_gamma=0.01 --set model.gan_margin=0 --set model.pixel_weight=10"
)

# The prior-draws table: configs/vae_gan_retinamnist.yaml at the small size, with its decoder's
# upsampling and KL weight set in every row. prior_fix: the commit that added model.upsample.
prior_fix=e082b23
prior_common=(--config configs/vae_gan_retinamnist.yaml "${small[@]}" --backend native --max-steps "$steps" --log-format plain --metrics-port 0)
prior_rows=(
  "transposed convolutions, KL weight 1 (as before)|$prior_fix|--set model.upsample=transpose --set model.kld_weight=1"
  "+ resize-then-convolve upsampling|$prior_fix|--set model.upsample=resize --set model.kld_weight=1"
  "+ KL weight 4 (the config)|$prior_fix|--set model.upsample=resize --set model.kld_weight=4"
  "+ KL weight 16|$prior_fix|--set model.upsample=resize --set model.kld_weight=16"
  "transposed convolutions, KL weight 4 (control)|$prior_fix|--set model.upsample=transpose --set model.kld_weight=4"
)

case $table in
  learn) rows=("${learn_rows[@]}") prefix=row ;;
  prior) rows=("${prior_rows[@]}") prefix=prior common=("${prior_common[@]}") ;;
  *) echo "TABLE must be learn or prior, got $table" >&2 && exit 2 ;;
esac

i=0
for row in "${rows[@]}"; do
  IFS='|' read -r label commit extra <<<"$row"
  run="$root/$out/$prefix$i"
  i=$((i + 1))
  [ -f "$run/eval.json" ] && continue
  tree="$root/$out/tree-$commit"
  [ -d "$tree" ] || { git worktree add --detach "$tree" "$commit" >/dev/null; ln -s "$root/node_modules" "$tree/node_modules"; }
  if [ ! -d "$run/checkpoints" ]; then
    # shellcheck disable=SC2086
    (cd "$tree" && node bin/medvae.js train "${common[@]}" $extra --out "$run" >&2)
  fi
  if [ "$table" = prior ]; then
    (cd "$tree" && node --import tsx bench/prior-holes.ts --run "$run" --out "$run/prior-holes" > "$run/holes.json")
  fi
  node bin/medvae.js eval --run "$run" --split test --n 400 >&2
  printf '{"label": "%s", "commit": "%s", "settings": "%s"}\n' "$label" "$commit" "$extra" > "$run/ablation.json"
done
node --import tsx bench/results-table.ts "$out/$prefix"[0-9]*

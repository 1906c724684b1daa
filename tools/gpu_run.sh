#!/usr/bin/env bash
# The paper-size GPU run in one command: the benchmarks on the GPU, a 1,000-model digits zoo, and the paper's
# `mnist` autoencoder preset (Table 8: a 700-number z, permuted views as targets) trained on it and judged on seen
# and unseen models and on what it samples (`hyperrep study --preset mnist --codes preset`).
#   tools/gpu_run.sh RESULTS_FOLDER [SECONDS]
# SECONDS (default 3600) bounds the whole run: the autoencoder gets the paper's 1,750 epochs or as many as the
# measured training rate fits in what is left after the zoo (the number run is in the results).
# MODELS (1000), DEVICE (cuda) and WORK (scratch folder) may be set in the environment; HYPERREP is the command.
set -u
results=${1:?usage: tools/gpu_run.sh RESULTS_FOLDER [SECONDS]}; budget=${2:-3600}
models=${MODELS:-1000}; device=${DEVICE:-cuda}; work=${WORK:-$(mktemp -d)}
hyperrep=${HYPERREP:-hyperrep}
mkdir -p "$results" "$work"
started=$(date +%s)
left() { echo $(( budget - ($(date +%s) - started) )); }
log() { echo "[$(( $(date +%s) - started )) s] $*" | tee -a "$results/log.txt"; }
run() { local limit=$1; shift; log "$*"; timeout "$limit" $hyperrep "$@" 2>&1 | tee -a "$results/log.txt"; local status=${PIPESTATUS[0]}; log "exit $status"; return "$status"; }

log "device $device, $models models, ${budget} s"
run 120 bench zoo --device "$device" --quiet | grep '^{' >> "$results/bench.jsonl"
run 60 bench ae --device "$device" --quiet | grep '^{' >> "$results/bench.jsonl"
run 90 bench ae --preset mnist --models "$models" --steps 20 --device "$device" --quiet | grep '^{' | tee -a "$results/bench.jsonl" > "$work/mnist_bench.json"
[ -s "$work/mnist_bench.json" ] || { log "the mnist autoencoder bench gave no rate (see the log above): the autoencoder's epochs cannot be sized, so nothing more is run"; exit 1; }
zoo_started=$(date +%s)
run $(( $(left) - 120 )) zoo --models "$models" --out "$work/zoo" --device "$device" --quiet \
  || { log "the zoo did not finish in the time left: no autoencoder on a partial zoo (give more SECONDS; with WORK set to the same folder, a rerun resumes the zoo)"; exit 1; }
log "zoo took $(( $(date +%s) - zoo_started )) s"
# Epochs that fit: the measured training rate over the train split's samples (70% of the models x 5 checkpoints),
# keeping 90 s for the judging and a sixth for validations and the rate's error.
epochs=$(python3 -c "import json,sys; b=json.load(open(sys.argv[1])); print(max(1, min(1750, int(($(left) - 90) * 5 / 6 * b['train_samples_per_s'] / (0.7 * $models * 5)))))" "$work/mnist_bench.json") \
  || { log "could not read the training rate from $work/mnist_bench.json"; exit 1; }
study_started=$(date +%s)
run $(( $(left) - 10 )) study --zoo "$work/zoo" --out "$work/study" --preset mnist --codes preset --recipes cpu --epochs "$epochs" --device "$device" --quiet
log "study ($epochs epochs) took $(( $(date +%s) - study_started )) s"
cp "$work/study/scaling.json" "$results/" 2>/dev/null
for bundle in "$work"/study/mnist_*; do [ -d "$bundle" ] && $hyperrep info "$bundle" > "$results/info.txt" 2>&1 && cp "$bundle/metrics.json" "$results/"; done
log "done"

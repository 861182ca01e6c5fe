#!/usr/bin/env bash
# GPU speed benchmarks of banet's bridge-attention ResNets, eager vs torch.compile, with `banet benchmark`.
#
#   bash benchmarks/gpu.sh OUTDIR          # from the repository root; one CUDA GPU; torch/torchvision/timm installed
#
# Goals it checks (the ratios are printed at the end of OUTDIR/gpu.log):
#   G1  BA-ResNet-50 compiled training step: images/s >= 0.95 x ResNet-50 compiled
#       (224 px, batch 128, bfloat16 autocast, channels_last; SE-ResNet-50 measured alongside for reference)
#   G2  BA-ResNet-56 (CIFAR-style, 28 px, batch 256) training images/s >= 0.85 x plain ResNet-56 when compiled with
#       CUDA graphs (torch.compile mode "reduce-overhead"): small inputs are launch-bound, and eager BA blocks run at
#       about 1/3 of the plain speed on an H100 (docs/benchmarks.md, "A first GPU observation").
#       CUDA graphs: `banet benchmark --compile --compile-mode reduce-overhead` (an older checkout without
#       --compile-mode falls back to --compile with TORCHINDUCTOR_CUDAGRAPHS=1 and says so in the log).
#
# What runs, in priority order (each a `banet benchmark` invocation writing one JSON; later ones are skipped when
# the time budget, 8 minutes in all by default, runs out):
#   1 rn50_train_eager.json      resnet50 seresnet50 ba_resnet50, train, 224 px, b128, bf16, channels_last
#   2 rn50_train_compiled.json   the same, --compile (inductor, default mode)                       -> G1
#   3 rn56_train_eager.json      resnet56_cifar seresnet56_cifar ba_resnet56_cifar, train, 28 px, b256, bf16, CL
#   4 rn56_train_cudagraphs.json the same, compiled with CUDA graphs (reduce-overhead)             -> G2
#   5 rn50_infer_eager.json      ResNet-50 family, inference, fused (banet.fuse: conv-BN and bridges folded)
#   6 rn50_infer_compiled.json   the same, --compile
#   7 rn56_train_compiled.json   ResNet-56 family, train, --compile (default mode, no CUDA graphs)
# plus OUTDIR/gpu.log (all output, the machine, the goal ratios): at most 8 files. The markdown/PNG reports of
# `banet benchmark` go to a temporary folder and are dropped. Models are built with 3 input channels and 1000
# classes (banet benchmark's defaults), also the 28-px CIFAR-style ones: the classifier is a negligible share.
#
# Environment: BANET_GPU_BUDGET_S (default 470) total seconds; BANET (default: `python -m banet`).
set -uo pipefail

OUT=${1:?usage: bash benchmarks/gpu.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src
PY=${PYTHON:-python}
BANET=${BANET:-"$PY -m banet"}
BUDGET=${BANET_GPU_BUDGET_S:-470}
START=$(date +%s)
TMP=$(mktemp -d)
export TORCHINDUCTOR_CACHE_DIR=$TMP/inductor   # a cold, private compile cache: compile times are first-time ones
trap 'rm -rf "$TMP"' EXIT
LOG=$OUT/gpu.log
: > "$LOG"

log() { echo "$*" | tee -a "$LOG"; }

log "banet GPU benchmarks, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | tee -a "$LOG"
$PY -c 'import torch, timm; print("torch", torch.__version__, "cuda", torch.version.cuda, "timm", timm.__version__,
"gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NONE")' 2>&1 | tee -a "$LOG"
if [ -z "${BANET_GPU_DRY_RUN:-}" ]; then  # (dry run: test the plumbing with a stand-in BANET, no GPU)
    $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || { log "no CUDA GPU: stop"; exit 1; }
fi

if $BANET benchmark --help 2>/dev/null | grep -q -- '--compile-mode'; then
    CUDAGRAPHS=(--compile --compile-mode reduce-overhead); CG_ENV=()
    log "CUDA graphs: banet benchmark --compile --compile-mode reduce-overhead"
else
    CUDAGRAPHS=(--compile); CG_ENV=(TORCHINDUCTOR_CUDAGRAPHS=1)
    log "NOTE: banet benchmark has no --compile-mode in this checkout; CUDA graphs via --compile +" \
        "TORCHINDUCTOR_CUDAGRAPHS=1 (inductor's cudagraphs switch; G2 wants --compile-mode reduce-overhead)"
fi

# bench NAME MIN_SECONDS CAP_SECONDS [ENV=VALUE ...] -- BENCHMARK_ARGS...
# Runs when at least MIN_SECONDS of the budget are left, under a timeout of min(CAP, what is left).
bench() {
    local name=$1 need=$2 cap=$3; shift 3
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
    local left=$(( BUDGET - ($(date +%s) - START) ))
    if [ "$left" -lt "$need" ]; then
        log "== $name: SKIPPED ($left s of the budget left, needs ~$need s)"; return 0
    fi
    local limit=$(( cap < left ? cap : left ))
    log "== $name (timeout ${limit} s): banet benchmark $*"
    local t0=$(date +%s)
    env "${envs[@]}" timeout --signal=TERM --kill-after=10 "$limit" \
        $BANET benchmark "$@" --output "$TMP/reports" --name "$name" >> "$LOG" 2>&1
    local rc=$?
    if [ $rc -eq 0 ] && [ -f "$TMP/reports/$name.json" ]; then
        cp "$TMP/reports/$name.json" "$OUT/$name.json"
        log "   done in $(( $(date +%s) - t0 )) s -> $OUT/$name.json"
    else
        log "   FAILED or timed out (exit $rc) after $(( $(date +%s) - t0 )) s"
    fi
    return 0
}

RN50=(resnet50 seresnet50 ba_resnet50 --img-size 224 -b 128 --dtype bfloat16 --channels-last --device cuda)
RN56=(resnet56_cifar seresnet56_cifar ba_resnet56_cifar --img-size 28 -b 256 --dtype bfloat16 --channels-last
      --device cuda)
# warm-up steps include the compilation (and the CUDA-graph recording: a few calls); repeats x iters timed steps
W50=(--warmup 3 --repeats 7 --iters 5)
W56=(--warmup 5 --repeats 7 --iters 20)

bench rn50_train_eager       30  90 -- "${RN50[@]}" --mode train "${W50[@]}"
bench rn50_train_compiled    90 240 -- "${RN50[@]}" --mode train --compile "${W50[@]}"
bench rn56_train_eager       20  60 -- "${RN56[@]}" --mode train "${W56[@]}"
bench rn56_train_cudagraphs  90 200 "${CG_ENV[@]}" -- "${RN56[@]}" --mode train "${CUDAGRAPHS[@]}" "${W56[@]}"
bench rn50_infer_eager       20  60 -- "${RN50[@]}" --mode infer --fuse "${W50[@]}"
bench rn50_infer_compiled    60 120 -- "${RN50[@]}" --mode infer --fuse --compile "${W50[@]}"
bench rn56_train_compiled    90 200 -- "${RN56[@]}" --mode train --compile "${W56[@]}"

grep -i 'skipping cudagraphs' "$LOG" | sort -u | head -5 | sed 's/^/WARNING (CUDA graphs not used): /' >> "$LOG"

# Goal ratios from the JSON files that exist
$PY - "$OUT" <<'EOF' 2>&1 | tee -a "$LOG"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])

def ips(name):
    f = out / f'{name}.json'
    if not f.is_file():
        return None
    return {r['model']: r['img_per_s'] for r in json.loads(f.read_text())['results']}

print('\nimages/s (median):')
for name in ('rn50_train_eager', 'rn50_train_compiled', 'rn50_infer_eager', 'rn50_infer_compiled',
             'rn56_train_eager', 'rn56_train_compiled', 'rn56_train_cudagraphs'):
    r = ips(name)
    print(f'  {name:24s}', 'not measured' if r is None else '  '.join(f'{m} {v:.0f}' for m, v in r.items()))

def goal(label, name, ba, ref, target):
    r = ips(name)
    if r is None:
        print(f'{label}: not measured ({name}.json missing)')
        return
    ratio = r[ba] / r[ref]
    print(f'{label}: {ba} / {ref} images/s = {ratio:.3f} (goal >= {target}): {"MET" if ratio >= target else "MISSED"}')

print()
goal('G1 compiled train', 'rn50_train_compiled', 'ba_resnet50', 'resnet50', 0.95)
goal('G2 CUDA graphs train', 'rn56_train_cudagraphs', 'ba_resnet56_cifar', 'resnet56_cifar', 0.85)
goal('   (eager, for reference)', 'rn56_train_eager', 'ba_resnet56_cifar', 'resnet56_cifar', 0.85)
goal('   (compiled, no CUDA graphs)', 'rn56_train_compiled', 'ba_resnet56_cifar', 'resnet56_cifar', 0.85)
EOF
log "total $(( $(date +%s) - START )) s; files in $OUT: $(ls "$OUT" | wc -l)"

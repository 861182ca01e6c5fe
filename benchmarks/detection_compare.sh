#!/usr/bin/env bash
# Plain vs SE vs BAv2 ResNet-18 backbones in the `make demo-detect` recipe (FCOS on the Fashion-MNIST scenes), two
# seeds each, then one table of box AP on the scenes' val split. Run from the repository root after `make demo-detect`
# (it writes the scenes); extra arguments go to every `banet detect train`, e.g. `--threads 1`.
#   bash benchmarks/detection_compare.sh [--threads N] > docs/results/detection_scenes.md
set -euo pipefail
BANET=${BANET:-.venv/bin/banet}
SCENES=${SCENES_DIR:-data/fmnist-scenes}
OUT=${OUT:-runs/compare-detect}
for seed in 0 1; do
  for backbone in resnet18 seresnet18 ba_resnet18; do
    run="$OUT/$backbone-seed$seed"
    if [ ! -f "$run/validate-val.json" ]; then
      "$BANET" detect train -c configs/detection/scenes_fcos_ba_resnet18.yaml --data-dir "$SCENES" --backbone "$backbone" \
        --seed "$seed" --output "$OUT" --experiment "$backbone-seed$seed" --no-progress "$@" >&2
      "$BANET" detect validate --checkpoint "$run" --data-dir "$SCENES" --device cpu --no-progress \
        --results-file "$run/validate-val.json" "$@" >&2
    fi
  done
done
"${BANET%banet}python" - "$OUT" <<'PY'
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
keys = ('bbox_AP', 'bbox_AP50', 'bbox_AP75', 'bbox_APs', 'bbox_APm')
print('| backbone | seeds | ' + ' | '.join(keys) + ' |')
print('|---|---|' + '---:|' * len(keys))
for backbone in ('resnet18', 'seresnet18', 'ba_resnet18'):
    runs = [json.loads(f.read_text()) for f in sorted(out.glob(f'{backbone}-seed*/validate-val.json'))]
    cells = [' / '.join(f'{r[k]:.3f}' for r in runs) + f' (mean {statistics.mean(r[k] for r in runs):.3f})'
             for k in keys]
    print(f'| `{backbone}` | {len(runs)} | ' + ' | '.join(cells) + ' |')
PY

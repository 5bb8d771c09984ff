#!/usr/bin/env bash
# The GPU figures docs/benchmarks.md asks for, in two short calls (each well under 10 min on
# an H100/H200; everything is written under $OUT, default ./gpu-check):
#
#   bash docs/gpu-check.sh torch    # bench: 3 networks at 300 px, bf16, compile off and on;
#                                   # then a paper-shaped slice through the real loop
#   bash docs/gpu-check.sh keras    # bench: the same networks in Keras, XLA off and on
#
# Synthetic images only: no dataset or weights are needed (random initialisation).
set -euo pipefail
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
what=${1:-torch}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

bench() {  # $1 engine
    harness bench --engine "$1" --image-size 300 --steps 20 --overhead --compile both \
        --json > "$OUT/bench-$1.json"
    python - "$OUT/bench-$1.json" <<'PY' | tee "$OUT/bench-$1.txt"
import json, sys
r = json.load(open(sys.argv[1]))
for engine, e in r["engines"].items():
    for m in e["models"]:
        p = m["projection"]["device"]
        frac = lambda k: "n/a" if m.get(k) is None else f"{100 * m[k]:.1f}%"
        print(f"{engine:<15} {e['device']} {e['precision']} {m['backbone']:<11} "
              f"batch {m['batch_size']:>3}  train {m['train_images_per_s']:8.1f} img/s "
              f"({frac('train_peak_frac')} of peak)  infer {m['infer_images_per_s']:8.1f} "
              f"img/s  overhead {100 * p['overhead_frac']:.1f}% (without selection "
              f"{100 * p['overhead_frac_without_selection']:.2f}%)  paper protocol "
              f"{p['protocol_hours']:.2f} h")
PY
}

slice() {  # one fold, one phase of paper size, 3 epochs, concat at 300 px, the real loop
    mkdir -p "$OUT/slice"
    cat > "$OUT/slice/slice.yaml" <<'YAML'
name: gpu-slice
classes: [normal, pneumonia, covid19]
image_size: 300
datasets:
  # the paper's phase: 250 normal + 234 pneumonia + every COVID-19 training image (~150)
  - {name: synthetic, options: {n: 3000, seed: 0, proportions: {normal: 0.55, pneumonia: 0.3875, covid19: 0.0625}}}
split: {kind: grouped-kfold, folds: 5, seed: 0}
matrix: {backbone: [concat], sampler: [phased], engine: [torch], seed: [0]}
samplers: {phased: {phases: 1, epochs: 3, quotas: {normal: 250, pneumonia: 234, covid19: all}}}
training: {batch_size: 20, weights: none, precision: auto}
report: {bootstrap: 100}
YAML
    ( cd "$OUT/slice" && /usr/bin/time -v harness run slice.yaml --only fold=1 \
        --runs-dir runs --reports-dir reports ) 2>&1 | tail -30 | tee "$OUT/slice.txt"
    cp "$OUT"/slice/runs/gpu-slice/*/history.csv "$OUT/slice-history.csv"
}

case "$what" in
    torch) bench torch; slice ;;
    keras) bench keras ;;
    *) echo "usage: $0 torch|keras" >&2; exit 2 ;;
esac

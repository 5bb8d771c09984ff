#!/usr/bin/env bash
# The GPU figures docs/benchmarks.md asks for, in two short calls (each well under 10 min on
# an H100/H200; everything is written under $OUT, default ./gpu-check):
#
#   bash docs/gpu-check.sh torch    # bench: 3 networks at 300 px, bf16, compile off and on;
#                                   # then a paper-shaped slice through the real loop
#   bash docs/gpu-check.sh keras    # bench: the same networks in Keras, XLA off and on
#   bash docs/gpu-check.sh determinism  # a tiny torch suite twice with training.deterministic
#                                   # on: predictions.csv byte for byte; seconds on vs off
#
# `determinism` needs only torch and `pip install --no-deps -e .` of this repository with
# the core's pure-Python dependencies (pydantic, pluggy, click, PyYAML, pandas, ...); DICOM
# and duplicate-hash libraries (pydicom, pylibjpeg, imagehash) are imported only when used.
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

determinism() {  # tiny backbone, 64 px, synthetic, 2 runs: twice on (a, b), once off (c)
    local d="$OUT/determinism"
    mkdir -p "$d"
    for det in true false; do
        cat > "$d/det-$det.yaml" <<YAML
name: det-$det
classes: [normal, pneumonia, covid19]
image_size: 64
datasets: [{name: synthetic, options: {n: 1200, seed: 0}}]
split: {kind: grouped-kfold, folds: 2, seed: 0}
matrix: {backbone: [tiny], sampler: [phased, none], engine: [torch], fold: [1], seed: [0]}
samplers: {phased: {phases: 3}}
training: {epochs_per_phase: 4, batch_size: 32, head: gap, weights: none, lr: 3.0e-3,
           device: cuda, deterministic: $det}
YAML
    done
    for try in a b; do
        HARNESS_QUIET=1 HARNESS_CACHE="$d/cache" harness run "$d/det-true.yaml" \
            --runs-dir "$d/$try" --no-report
    done
    HARNESS_QUIET=1 HARNESS_CACHE="$d/cache" harness run "$d/det-false.yaml" \
        --runs-dir "$d/c" --no-report
    python3 - "$d" <<'PY' | tee "$OUT/determinism.txt"
import csv, pathlib, sys
d = pathlib.Path(sys.argv[1])
def seconds(folder):  # training + selection seconds from every run's history
    total = 0.0
    for h in folder.glob("*/*/history.csv"):
        for r in csv.DictReader(h.open()):
            total += float(r["seconds"] or 0) + float(r["select_seconds"] or 0)
    return total
same = []
for p in sorted((d / "a").glob("*/*/predictions.csv")):
    q = d / "b" / p.relative_to(d / "a")
    same.append(q.is_file() and p.read_bytes() == q.read_bytes())
    print(f"{p.parent.name}: predictions.csv {'identical' if same[-1] else 'DIFFERENT'}")
print(f"deterministic on, two tries: {sum(same)} of {len(same)} runs byte-identical")
on = (seconds(d / "a") + seconds(d / "b")) / 2
off = seconds(d / "c")
print(f"training seconds: deterministic on {on:.2f} (mean of 2), off {off:.2f}, "
      f"on/off {on / off:.2f}")
sys.exit(0 if same and all(same) else 1)
PY
}

case "$what" in
    torch) bench torch; slice ;;
    keras) bench keras ;;
    determinism) determinism ;;
    *) echo "usage: $0 torch|keras|determinism" >&2; exit 2 ;;
esac

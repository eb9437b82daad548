#!/usr/bin/env bash
# Reproduce the DeepNNK paper from a fresh machine.
#
#   ./reproduce.sh                      # set up .venv, run every notebook, profile "quick"
#   ./reproduce.sh --profile paper      # everything, as in the paper (see README for times)
#   ./reproduce.sh --profile smoke      # seconds per notebook
#   ./reproduce.sh --tests              # set up .venv, check the layering, run the test suite
#
# Options: --data DIR (default $DEEPNNK_DATA, else ./data; downloads CIFAR-10 there when online),
#          --weights paper|retrained, --solver exact|prune, --only NAME[,NAME] (some notebooks),
#          --results DIR (default ./results), --skip-install.
set -euo pipefail
cd "$(dirname "$0")"

PROFILE=quick
WEIGHTS=paper
SOLVER=exact
ONLY=""
TESTS=0
INSTALL=1
RESULTS=${DEEPNNK_RESULTS:-results}
DATA=${DEEPNNK_DATA:-data}
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --weights) WEIGHTS=$2; shift 2 ;;
    --solver) SOLVER=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    --tests) TESTS=1; shift ;;
    --skip-install) INSTALL=0; shift ;;
    --) shift; PYTEST_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$PROFILE" in smoke|quick|paper) ;; *) echo "--profile must be smoke, quick or paper" >&2; exit 2 ;; esac

VENV=${DEEPNNK_VENV:-.venv}
PY="$VENV/bin/python"
if [ "$INSTALL" = 1 ]; then
  if [ ! -x "$PY" ]; then
    echo "== creating virtual environment $VENV"
    python3 -m venv "$VENV"
  fi
  "$PY" -m pip install -q --upgrade pip
  # torch first, on its own: where a local wheel cache pins a version (as on the project's
  # machines, torch 2.14.1 / torchvision 0.29.1) pip takes it; elsewhere the newest release.
  if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
    echo "== installing torch and torchvision"
    "$PY" -m pip install -q "torch>=2.3" "torchvision>=0.18"
  fi
  EXTRAS=${DEEPNNK_EXTRAS:-dev}
  echo "== installing deepnnk and its extras [$EXTRAS]"
  "$PY" -m pip install -q -e ".[$EXTRAS]"
  # A kernel named after the project, so papermill runs this venv's Python whatever else is
  # installed on the machine.
  "$PY" -m ipykernel install --sys-prefix --name deepnnk --display-name "Python (deepnnk)" >/dev/null
fi

export DEEPNNK_DATA="$DATA"
export MPLBACKEND=Agg

if [ "$TESTS" = 1 ]; then
  export TQDM_DISABLE=1
  # The layering contracts first (pyproject.toml [tool.importlinter]; ARCHITECTURE.md): seconds.
  echo "== lint-imports"
  "$VENV/bin/lint-imports"
  exec "$PY" -m pytest -q "${PYTEST_ARGS[@]}"
fi

export TQDM_DISABLE=${TQDM_DISABLE:-1}
mkdir -p "$RESULTS/$PROFILE"
export DEEPNNK_DATA="$(realpath -m "$DATA")" DEEPNNK_RESULTS="$(realpath -m "$RESULTS")"
export DEEPNNK_CHECKPOINTS="${DEEPNNK_CHECKPOINTS:-$(realpath -m checkpoints)}"
start=$(date +%s)
for nb in notebooks/[0-9]*.ipynb; do
  name=$(basename "$nb" .ipynb)
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  out="$RESULTS/$PROFILE/$name"
  mkdir -p "$out"
  echo "== $name (profile $PROFILE, weights $WEIGHTS, solver $SOLVER)"
  t0=$(date +%s)
  # Only the parameters this notebook declares (00 has no weights), and no machine paths: the
  # folders travel as $DEEPNNK_DATA / $DEEPNNK_RESULTS / $DEEPNNK_CHECKPOINTS (exported above).
  params=(-p profile "$PROFILE")
  for p in weights solver; do
    var=${p^^}
    if grep -q "\"$p = " "$nb"; then params+=(-p "$p" "${!var}"); fi
  done
  "$PY" -m papermill "$nb" "$out/$name.ipynb" -k deepnnk --cwd notebooks "${params[@]}" \
    --log-level WARNING
  echo "   done in $(( $(date +%s) - t0 )) s"
done
echo "== all notebooks done in $(( $(date +%s) - start )) s"
"$PY" -m deepnnk summary "$RESULTS/$PROFILE"

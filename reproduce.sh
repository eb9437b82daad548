#!/usr/bin/env bash
# Reproduce the DeepNNK paper from a fresh machine.
#
#   ./reproduce.sh                      # set up .venv, run every notebook, profile "quick"
#   ./reproduce.sh --profile paper      # everything, as in the paper (see README for times)
#   ./reproduce.sh --profile smoke      # seconds per notebook
#   ./reproduce.sh --tests              # set up .venv, check the layering, run the test suite
#   ./reproduce.sh --publish            # the paper profile, executed notebooks under published/
#   ./reproduce.sh --book               # the HTML book of published/ (no execution), results/book/
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
BOOK=0
PUBLISH=0
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
    --book) BOOK=1; shift ;;
    --publish) PUBLISH=1; shift ;;
    --skip-install) INSTALL=0; shift ;;
    --) shift; PYTEST_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# The published copies: the paper profile, executed into published/ ($DEEPNNK_PUBLISHED).
PUBLISHED=${DEEPNNK_PUBLISHED:-published}
if [ "$PUBLISH" = 1 ]; then PROFILE=paper; RESULTS=$PUBLISHED; fi
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
  # The book's tool (Jupyter Book 1, sphinx) is an extra of its own: only --book needs it.
  if [ "$BOOK" = 1 ] && [[ ",$EXTRAS," != *",book,"* ]]; then EXTRAS="$EXTRAS,book"; fi
  echo "== installing deepnnk and its extras [$EXTRAS]"
  "$PY" -m pip install -q -e ".[$EXTRAS]"
  # A kernel named after the project, so papermill runs this venv's Python whatever else is
  # installed on the machine.
  "$PY" -m ipykernel install --sys-prefix --name deepnnk --display-name "Python (deepnnk)" >/dev/null
fi

export DEEPNNK_DATA="$DATA"
export MPLBACKEND=Agg

# The book of published/: build_book stages its pages (published/*.md, _config.yml, _toc.yml)
# and the executed notebooks of the paper profile, flat as in notebooks/ so that their links
# between chapters resolve, and builds it with Jupyter Book, executing nothing. A chapter not
# published yet is left out with a message, not an error.
build_book() {
  BOOK_DIR=${DEEPNNK_BOOK:-results/book}
  src="$BOOK_DIR/_source"
  rm -rf "$src" "$BOOK_DIR/_build"
  mkdir -p "$src"
  cp published/_config.yml published/_toc.yml published/*.md "$src/"
  for entry in $(sed -n 's/^ *- file: *//p' published/_toc.yml); do
    [ -f "published/$entry.md" ] && continue
    nb="$PUBLISHED/paper/$entry/$entry.ipynb"
    if [ -f "$nb" ]; then
      cp "$nb" "$src/"
    else
      echo "!! $entry is not published yet ($nb): left out of the book; ./reproduce.sh --publish"
      sed -i "/- file: $entry\$/d" "$src/_toc.yml"
    fi
  done
  # MathJax from the book extra (jupyter-server-mathjax), served with the book: math renders
  # without a network, where the theme's default would fetch it from a CDN.
  mathjax=$("$PY" -c "import jupyter_server_mathjax as m, os; print(os.path.dirname(m.__file__))")
  mkdir -p "$src/_extra"
  cp -r "$mathjax/static" "$src/_extra/mathjax"
  echo "== building the book from $PUBLISHED/paper (nothing is executed)"
  t0=$(date +%s)
  # Its own banner goes to a log; what sphinx warns about is shown.
  if ! "$VENV/bin/jupyter-book" build "$src" --path-output "$BOOK_DIR" --all -q \
      >"$BOOK_DIR/build.log" 2>&1; then
    tail -30 "$BOOK_DIR/build.log" >&2
    echo "!! the book did not build: $BOOK_DIR/build.log" >&2
    exit 1
  fi
  grep -E "WARNING|ERROR" "$BOOK_DIR/build.log" || true
  echo "== book built in $(( $(date +%s) - t0 )) s: open $BOOK_DIR/_build/html/index.html"
}
if [ "$BOOK" = 1 ] && [ "$PUBLISH" = 0 ]; then build_book; exit 0; fi

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
# Execute one notebook with papermill: run_notebook IN OUT [NAME VALUE]...
# The kernel talks to papermill over IPC sockets (files in Jupyter's runtime folder) rather than
# local TCP, which ipykernel would warn about for every notebook. The executed copy records its
# output path relative to the results folder, so it names nothing of this machine.
run_notebook() {
  "$PY" - "$RESULTS" "$@" <<'PYTHON'
import os
import sys

import nbformat
import papermill
from traitlets.config import Config

results, src, dst, *pairs = sys.argv[1:]
config = Config()
config.KernelManager.transport = "ipc"
try:
    papermill.execute_notebook(
        src, dst, parameters=dict(zip(pairs[::2], pairs[1::2])), kernel_name="deepnnk",
        cwd="notebooks", progress_bar=False, config=config,
    )
except papermill.PapermillExecutionError as err:
    print(f"!! {os.path.basename(src)} failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
          f"\n   the executed copy, with the traceback, is {dst}", file=sys.stderr)
    sys.exit(1)
nb = nbformat.read(dst, as_version=4)
nb.metadata["papermill"]["output_path"] = os.path.relpath(dst, results)
nbformat.write(nb, dst)
PYTHON
}

start=$(date +%s)
for nb in notebooks/[0-9]*.ipynb; do
  name=$(basename "$nb" .ipynb)
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  out="$RESULTS/$PROFILE/$name"
  mkdir -p "$out"
  # Only the parameters this notebook declares (00 has no weights), and no machine paths: the
  # folders travel as $DEEPNNK_DATA / $DEEPNNK_RESULTS / $DEEPNNK_CHECKPOINTS (exported above).
  params=(profile "$PROFILE")
  for p in weights solver; do
    var=${p^^}
    if grep -q "\"$p = " "$nb"; then params+=("$p" "${!var}"); fi
  done
  shown=$(printf '%s %s, ' "${params[@]}")
  echo "== $name (${shown%, })"
  t0=$(date +%s)
  run_notebook "$nb" "$out/$name.ipynb" "${params[@]}"
  echo "   done in $(( $(date +%s) - t0 )) s"
done
echo "== all notebooks done in $(( $(date +%s) - start )) s"
"$PY" -m deepnnk summary "$RESULTS/$PROFILE"
if [ "$BOOK" = 1 ]; then build_book; fi

#!/usr/bin/env bash
# The main job end to end on the iris example. Each step is printed before it runs.
set -euo pipefail
cd "$(dirname "$0")/../examples/iris"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "python train.py"
python train.py
step "mlpack models list iris_clf"
mlpack models list iris_clf
step "mlpack models get iris_clf:latest"
mlpack models get iris_clf:latest
printf '\ndemo finished\n'

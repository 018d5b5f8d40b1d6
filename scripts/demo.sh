#!/usr/bin/env bash
# The main job end to end on the iris example: train, list, build, run offline, serve, query.
# Each step is printed before it runs. Uses the normal store ($MLPACK_HOME, default ~/.mlpack).
set -euo pipefail
cd "$(dirname "$0")/../examples/iris"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
PORT=${MLPACK_DEMO_PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
OUT=$(mktemp -d)
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT

step "python train.py"
python train.py

step "mlpack models list iris_clf"
mlpack models list iris_clf

step "mlpack build"
TAG=$(mlpack build -o tag)
echo "$TAG"

step "mlpack run $TAG predict --input-file iris.csv --output-file predictions.csv"
mlpack run "$TAG" predict --input-file iris.csv --output-file "$OUT/predictions.csv"
echo "$(($(wc -l < "$OUT/predictions.csv") - 1)) predictions; first rows:"
head -4 "$OUT/predictions.csv"

step "mlpack serve $TAG --port $PORT  (in the background)"
mlpack serve "$TAG" --port "$PORT" > "$OUT/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 200); do
  if python -c "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/readyz', timeout=1)" 2>/dev/null; then break; fi
  kill -0 "$SERVER" 2>/dev/null || { cat "$OUT/server.log"; exit 1; }
  sleep 0.1
done

step "curl -X POST -H 'content-type: application/json' -d '[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]' localhost:$PORT/predict"
python - "$PORT" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(
    f"http://127.0.0.1:{sys.argv[1]}/predict",
    data=json.dumps([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).encode(),
    headers={"content-type": "application/json"},
)
print(urllib.request.urlopen(req, timeout=10).read().decode())
PY

step "stop the server"
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
echo "server stopped"
printf '\ndemo finished\n'

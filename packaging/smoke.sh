#!/usr/bin/env bash
# Smoke test of the built app, offscreen; exits 0 only if every step passes:
#   1. the welcome screen (no model) is shown and saved: the start-up time to a first window;
#   2. `gui sample:digits-cnn --screenshot`: the bundled sample opens;
#   3. `inspect sample:minilm-sentiment --json`: the MiniLM sample and transformers are bundled;
#   4. `--self-test` (packaging/selftest.py): a plan run and an int8 ONNX export through the window's
#      job runner, in its forkserver child process, each with a screenshot;
#   5. no process of the app is left behind (the forkserver and the job worker end with the window).
# usage: packaging/smoke.sh [DIST_DIR]      SMOKE_OUT=DIR keeps the screenshots there
set -euo pipefail
DIST="$(cd "${1:-dist/compression-studio}" && pwd)"
APP="$DIST/compression-studio"
if [[ -n "${SMOKE_OUT:-}" ]]; then
  OUT="$SMOKE_OUT"; mkdir -p "$OUT"
else
  OUT="$(mktemp -d)"; trap 'rm -rf "$OUT"' EXIT
fi
export QT_QPA_PLATFORM=offscreen
export XDG_CONFIG_HOME="$OUT/config"  # throw-away settings: no recent files, layout or plan autosaves of the user's
now() { date +%s.%N; }

t0=$(now)
"$APP" gui --screenshot "$OUT/welcome.png"
t1=$(now)
test -s "$OUT/welcome.png"

"$APP" gui sample:digits-cnn --screenshot "$OUT/digits.png"
t2=$(now)
test -s "$OUT/digits.png"

"$APP" inspect sample:minilm-sentiment --json > "$OUT/minilm.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['total_params'] > 20_000_000, d['total_params']" \
  "$OUT/minilm.json"

STUDIO_T0=$(now) "$APP" --self-test "$OUT/selftest" > "$OUT/selftest.json"
python3 - "$OUT/selftest.json" <<'EOF'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert d["self_test"] == "ok" and d["frozen"], d
assert d["job_worker_pids"] and d["window_pid"] not in d["job_worker_pids"], d  # the jobs ran in a child
assert d["export_bytes"] > 0 and not d["in_process_backend"], d
EOF

for _ in $(seq 50); do  # the forkserver and the worker leave with the window (give them 5 s)
  pgrep -f "^$APP" > /dev/null || break
  sleep 0.1
done
if pgrep -fa "^$APP"; then echo "smoke: processes of the app are still running (above)" >&2; exit 1; fi

printf '{"smoke": "ok", "welcome_screenshot_s": %.1f, "sample_screenshot_s": %.1f, "app_bytes": %s, "self_test": %s}\n' \
  "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(du -sb "$DIST" | cut -f1)" \
  "$(tail -n 1 "$OUT/selftest.json")"

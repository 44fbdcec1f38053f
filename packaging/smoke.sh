#!/usr/bin/env bash
# Smoke test of the built app: starts offscreen, opens the bundled sample, takes a screenshot,
# inspects the MiniLM sample as JSON, and exits 0.   usage: packaging/smoke.sh [DIST_DIR]
set -euo pipefail
APP="${1:-dist/compression-studio}/compression-studio"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
export QT_QPA_PLATFORM=offscreen
start=$(date +%s.%N)
"$APP" gui sample:digits-cnn --screenshot "$OUT/digits.png"
end=$(date +%s.%N)
test -s "$OUT/digits.png"
"$APP" inspect sample:minilm-sentiment --json > "$OUT/minilm.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['total_params'] > 20_000_000, d['total_params']" "$OUT/minilm.json"
printf '{"smoke": "ok", "gui_screenshot_s": %.1f, "app_bytes": %s}\n' "$(echo "$end - $start" | bc)" \
  "$(du -sb "$(dirname "$APP")" | cut -f1)"

#!/usr/bin/env bash
# `make run` on a machine without a display: the headless demo. Starts the
# embedded default server (`spool serve` on localhost, data in .spool/data),
# a virtual X display (Xvfb) with something changing on it, records it with
# `spool record` while uploading, prints the share link, and keeps the server
# running so the link works until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

# The release build wherever cargo put it ($CARGO_TARGET_DIR or target/).
SPOOL=${SPOOL:-$(scripts/target-dir.sh release)/spool}
LISTEN=${SPOOL_LISTEN:-127.0.0.1:8080}
DATA=${SPOOL_DATA:-.spool/data}
SECONDS_TO_RECORD=${DEMO_SECONDS:-8}
# The demo's logs, recordings and upload journal.
DEMO_DIR=${DEMO_DIR:-.spool/demo}
mkdir -p "$DATA" "$DEMO_DIR"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# The virtual display reports its number on fd 3 once it is ready.
exec 3< <(Xvfb -displayfd 1 -nolisten tcp -screen 0 1280x720x24 2>/dev/null & echo "pid $!")
read -r _ xvfb_pid <&3
pids+=("$xvfb_pid")
read -r display_num <&3 || { echo "demo: Xvfb did not start" >&2; exit 1; }
display=":$display_num"

"$SPOOL" serve --listen "$LISTEN" --data "$DATA" > "$DEMO_DIR"/serve.log 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
for _ in $(seq 100); do grep -qs '^listening on ' "$DEMO_DIR"/serve.log && break; sleep 0.1; done
grep -q '^listening on ' "$DEMO_DIR"/serve.log || { cat "$DEMO_DIR"/serve.log >&2; exit 1; }
base="http://$LISTEN"
echo "Spool server (embedded default) on $base; recording the virtual display $display for $SECONDS_TO_RECORD s…"

# Something to see: the background changes colour every second.
(for c in '#1f77b4' '#ff7f0e' '#2ca02c' '#d62728' '#9467bd' '#8c564b' '#e377c2' '#7f7f7f' '#bcbd22' '#17becf'; do
   xsetroot -display "$display" -solid "$c"; sleep 1; done) &
painter=$!
pids+=("$painter")

out=$("$SPOOL" record --source "x11:$display" --duration "$SECONDS_TO_RECORD" --output "$DEMO_DIR"/recordings \
  --state-dir "$DEMO_DIR"/state --server "$base" --token-secret-file "$DATA/credentials" --json)
complete=$(grep '"event":"complete"' <<<"$out" | tail -n 1)
python3 - "$complete" <<'PY'
import json, sys
c = json.loads(sys.argv[1])
print(f"recorded {c['duration_ms']/1000:.1f} s, {c['fragments']} fragments, {c['bytes']/1e6:.1f} MB to {c['local_path']}")
print(f"link ready {c['stop_to_complete_ms']} ms after Stop")
print(f"share link: {c['share_url']}")
PY
echo "The server keeps running so the link works; Ctrl-C to stop."
kill "$painter" "$xvfb_pid" 2>/dev/null || true
wait "$serve_pid"

#!/usr/bin/env bash
# Fault script (run by .ci/run): a burst of N files (default 100,000) lands in pickup while the
# daemon's inotify reader is paused, far more than the kernel queue holds (max_queued_events is
# also lowered for the daemon's instance when this runs as root). The kernel reports IN_Q_OVERFLOW,
# Postroom rescans, and every message must be delivered exactly once with nothing left queued.
# usage: scripts/overflow-burst.sh [N]     (POSTROOM_BINARY overrides .build/debug/postroom)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
bin=${POSTROOM_BINARY:-.build/debug/postroom}
[ -x "$bin" ] || swift build
work=$(mktemp -d /tmp/postroom-burst.XXXXXX)
limit=/proc/sys/fs/inotify/max_queued_events
original=$(cat "$limit")
pid=
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  [ -w "$limit" ] && echo "$original" >"$limit" || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/spool/pickup" "$work/staging"
python3 - "$n" "$work/staging" <<'PY'
import sys, os
n, folder = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    with open(os.path.join(folder, f"b{i}.eml"), "w") as f:
        f.write(f"From: z@elsewhere.org\r\nTo: alice@example.com\r\nSubject: burst {i}\r\nX-Token: b{i}\r\n\r\nburst body {i}.\r\n")
PY
[ -w "$limit" ] && echo 1024 >"$limit"
POSTROOM_TEST_PAUSE_EVENTS_MS=4000 "$bin" run pipelines/default.json5 --spool "$work/spool" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do grep -q "running on spool" "$work/log" 2>/dev/null && break; sleep 0.1; done
[ -w "$limit" ] && echo "$original" >"$limit"
start=$(date +%s)
python3 - "$work/staging" "$work/spool/pickup" <<'PY'
import sys, os
src, dst = sys.argv[1], sys.argv[2]
for name in os.listdir(src):
    os.rename(os.path.join(src, name), os.path.join(dst, name))
PY
deadline=$((start + 1500))
while :; do
  delivered=$( (find "$work/spool/mailboxes/alice/new" -type f 2>/dev/null || true) | wc -l)
  [ "$delivered" -ge "$n" ] && break
  if [ "$(date +%s)" -gt "$deadline" ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "overflow burst: FAILED, $delivered of $n delivered" >&2; tail -5 "$work/log" >&2; exit 1
  fi
  sleep 1
done
elapsed=$(( $(date +%s) - start ))
kill -TERM "$pid"; wait "$pid" || { echo "overflow burst: FAILED, the daemon did not exit 0" >&2; exit 1; }
pid=
grep -q "inotify queue overflowed" "$work/log" || { echo "overflow burst: FAILED, no overflow was reported" >&2; exit 1; }
left=$(find "$work/spool/queue/incoming" "$work/spool/queue/active" "$work/spool/queue/deferred" -type f | wc -l)
[ "$left" -eq 0 ] || { echo "overflow burst: FAILED, $left files left in the queue" >&2; exit 1; }
[ -z "$(ls -A "$work/spool/pickup")" ] || { echo "overflow burst: FAILED, pickup is not empty" >&2; exit 1; }
unique=$(grep -rh "^X-Token: " "$work/spool/mailboxes/alice/new" | sort -u | wc -l)
total=$(find "$work/spool/mailboxes/alice/new" -type f | wc -l)
[ "$unique" -eq "$n" ] && [ "$total" -eq "$n" ] || { echo "overflow burst: FAILED, $total files, $unique distinct of $n" >&2; exit 1; }
echo "overflow burst: ok, $n files after an IN_Q_OVERFLOW, each delivered exactly once in ${elapsed}s"

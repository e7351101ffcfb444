#!/usr/bin/env bash
# The cost of a `command` stage, in one run: `postroom bench` through the default pipeline,
# and through the same pipeline with a trivial filter stage (`cat`) after route, alternately.
# Prints each run's RESULT line, the CPU seconds of each run (bench + daemon + the cat
# processes, from bash's `time`), the median msgs/s of each pipeline, and the CPU time one
# `cat` stage adds per message (the generator's share is the same in both).
#
# usage: Benchmarks/command-stage.sh N [ROUNDS]
#   N        messages per measurement (e.g. 2000)
#   ROUNDS   measurements per pipeline (default 3), interleaved so drift hits both alike
set -euo pipefail
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 N [ROUNDS]" >&2
  exit 2
fi
n=$1
rounds=${2:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/postroom-command-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
(cd "$repo" && swift build -c release 2>&1 | tail -1) >&2
postroom=$repo/.build/release/postroom

cp "$repo/pipelines/directory.json5" "$work/"
cp "$repo/pipelines/default.json5" "$work/plain.json5"
sed 's|{ stage: "route" },|{ stage: "route" }, { stage: "command", name: "cat", command: ["cat"], mode: "filter" },|' \
  "$repo/pipelines/default.json5" > "$work/cat.json5"
grep -q 'stage: "command"' "$work/cat.json5" || { echo "command-stage.sh: could not insert the stage" >&2; exit 1; }

TIMEFORMAT='%U %S'
for round in $(seq "$rounds"); do
  for name in plain cat; do
    { time "$postroom" bench --messages "$n" --pipeline "$work/$name.json5" > "$work/out" 2>&1; } 2> "$work/time"
    result=$(grep '^RESULT ' "$work/out" | tail -1)
    cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$work/time")
    echo "$name round $round: cpu_s=$cpu $result"
    rate=$(sed -n 's/.*msgs_per_s=\([0-9.]*\).*/\1/p' <<< "$result")
    echo "$name $rate $cpu" >> "$work/figures"
  done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
plain_rate=$(awk '$1 == "plain" { print $2 }' "$work/figures" | median)
cat_rate=$(awk '$1 == "cat" { print $2 }' "$work/figures" | median)
plain_cpu=$(awk '$1 == "plain" { print $3 }' "$work/figures" | median)
cat_cpu=$(awk '$1 == "cat" { print $3 }' "$work/figures" | median)
added=$(awk -v a="$cat_cpu" -v b="$plain_cpu" -v n="$n" 'BEGIN { printf "%.2f", (a - b) * 1000 / n }')
ratio=$(awk -v a="$cat_rate" -v b="$plain_rate" 'BEGIN { printf "%.2f", a / b }')
echo "RESULT command-stage messages=$n rounds=$rounds plain_msgs_per_s=$plain_rate cat_msgs_per_s=$cat_rate ratio=$ratio plain_cpu_s=$plain_cpu cat_cpu_s=$cat_cpu added_cpu_ms_per_msg=$added"

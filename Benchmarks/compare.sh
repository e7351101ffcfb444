#!/usr/bin/env bash
# Postroom against its two anchors, in one run, on the same messages and with the same durability
# (an fsync per queued file and per delivered file):
#   - the filesystem limit: ../shared/bench/fslimit.c --sync file+dir --queue (C, no parsing or routing)
#   - Postfix delivering into Maildirs through sendmail and over SMTP (../shared/bench/run-postfix.sh),
#     when postfix is installed (apt-get install -y postfix; this script never installs it)
#   - Postroom whose last hop is an smtp connector into a throwaway Postfix relay (postfix-relay.sh:
#     its own config dir and loopback port) delivering into a Maildir: the same path as "postfix smtp"
#     with Postroom in front (needs root and Postfix)
# and prints each figure and the ratios Postroom/limit and Postroom/Postfix.
#
# usage: Benchmarks/compare.sh N [WORKDIR]
#   N          messages per measurement (e.g. 2000)
#   WORKDIR    scratch folder (default: a fresh mktemp -d, removed afterwards)
# environment:
#   GENMAIL_ARGS   genmail.py options (default "--users alice": one recipient per message)
#   FSLIMIT_JOBS   fslimit threads (default 4: its best on a 2-core machine; -j 1 is ~3x slower)
#   SKIP_POSTFIX=1 leave Postfix out even when it is installed
set -euo pipefail

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 N [WORKDIR]" >&2
  exit 2
fi
n=$1
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shared/ sits beside the repository (in the developer tree and in CI's clone).
shared=$(cd "$here/../../shared/bench" 2>/dev/null && pwd) || { echo "compare.sh: $here/../../shared/bench not found" >&2; exit 2; }
export GENMAIL_ARGS=${GENMAIL_ARGS:-"--users alice"}
jobs=${FSLIMIT_JOBS:-4}
if [ $# -ge 2 ]; then work=$2; mkdir -p "$work"; cleanup=false; else work=$(mktemp -d /tmp/postroom-compare.XXXXXX); cleanup=true; fi
# mktemp -d makes the folder 0700; Postfix's virtual(8) runs unprivileged and must reach its maps inside.
chmod 755 "$work"
$cleanup && trap 'rm -rf "$work"' EXIT

# Build: a no-op when the release binary is up to date.
(cd "$repo" && swift build -c release 2>&1 | tail -1) >&2
postroom=$repo/.build/release/postroom
gcc -O2 -pthread -o "$work/fslimit" "$shared/fslimit.c"

# The same messages for everyone: genmail.py is deterministic (seed 1) apart from Date headers.
rm -rf "$work/msgs"
# shellcheck disable=SC2086  # GENMAIL_ARGS is a list of words
python3 "$shared/genmail.py" "$n" "$work/msgs" $GENMAIL_ARGS

field() { # field NAME LINE: the value of NAME=value in a RESULT line
  tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "NA" }'; }

echo "== postroom bench --from ($n messages)" >&2
pr_line=$(cd "$repo" && "$postroom" bench --from "$work/msgs" | tee >(cat >&2) | grep '^RESULT postroom')
pr=$(field msgs_per_s "$pr_line")

echo "== fslimit --sync file+dir --queue -j $jobs" >&2
rm -rf "$work/fsl-src" "$work/fsl-dst"
cp -r "$work/msgs" "$work/fsl-src"
sync
fs_out=$("$work/fslimit" "$work/fsl-src" "$work/fsl-dst" --sync file+dir --queue -j "$jobs" | tee >(cat >&2))
fs=$(awk '{ for (i = 1; i < NF; i++) if ($i == "msgs/s") print $(i + 1) }' <<<"$fs_out")
rm -rf "$work/fsl-src" "$work/fsl-dst"

pf_sendmail=NA pf_smtp=NA
if [ "${SKIP_POSTFIX:-0}" != 1 ] && command -v postfix >/dev/null && [ -x /usr/sbin/sendmail ]; then
  for mode in sendmail smtp; do
    echo "== postfix $mode" >&2
    out=$("$shared/run-postfix.sh" "$n" "$work/postfix" "$mode" | tee >(cat >&2) | tail -1)
    # run-postfix.sh prints an integer msgs/s; recompute it from its seconds for two decimals.
    secs=$(awk '{ for (i = 1; i < NF; i++) if ($i == "seconds") print $(i + 1) }' <<<"$out")
    value=$(awk -v n="$n" -v s="$secs" 'BEGIN { if (s + 0 > 0) printf "%.1f", n / s; else print "NA" }')
    # A run that timed out (deliveries short of expected) has no meaningful rate.
    got=$(awk '{ for (i = 1; i < NF; i++) if ($i == "deliveries") print $(i + 1) }' <<<"$out")
    [ "${got%/*}" = "${got#*/}" ] || value=NA
    if [ "$mode" = sendmail ]; then pf_sendmail=$value; else pf_smtp=$value; fi
  done
else
  echo "== postfix: not installed (apt-get install -y postfix) or SKIP_POSTFIX=1; left out" >&2
fi

pr_smtp=NA
pr_smtp_line=""
if [ "${SKIP_POSTFIX:-0}" != 1 ] && command -v postfix >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "== postroom bench, last hop smtp into a Postfix relay ($n generated messages, 1 recipient)" >&2
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  relay_maildir=$("$here/postfix-relay.sh" start "$work/relay" "$port")
  sed "s|type: \"foreign\", addressSpaces: \[\"SMTP:\*;10\"\], dropDirectory: \"drop/outbound\"|type: \"smtp\", addressSpaces: [\"SMTP:*;10\"], smartHosts: [\"127.0.0.1:$port\"]|" \
    "$repo/pipelines/default.json5" >"$work/smtp-pipeline.json5"
  cp "$repo/pipelines/directory.json5" "$work/directory.json5"
  grep -q 'type: "smtp"' "$work/smtp-pipeline.json5" || { echo "compare.sh: the default pipeline's outbound connector moved" >&2; exit 1; }
  pr_smtp_line=$(cd "$repo" && "$postroom" bench --pipeline "$work/smtp-pipeline.json5" --messages "$n" --domain sink.test \
    --relay-maildir "$relay_maildir" | tee >(cat >&2) | grep '^RESULT postroom') || true
  echo "   relay log: $(grep -c ' connect from' "$work/relay/maillog" || true) SMTP connections for $n messages" >&2
  "$here/postfix-relay.sh" stop "$work/relay"
  [ -n "$pr_smtp_line" ] && pr_smtp=$(field msgs_per_s "$pr_smtp_line")
else
  echo "== postroom -> smtp -> postfix relay: needs root and postfix; left out" >&2
fi

printf '\n%-44s %10s\n' "measurement ($n messages, $GENMAIL_ARGS)" "msgs/s"
printf '%-44s %10s   p50 %s ms  p99 %s ms  peak RSS %s MB\n' "postroom bench --from" "$pr" \
  "$(field p50_ms "$pr_line")" "$(field p99_ms "$pr_line")" "$(field peak_rss_mb "$pr_line")"
printf '%-44s %10s\n' "fslimit --sync file+dir --queue -j $jobs" "$fs"
printf '%-44s %10s\n' "postfix sendmail" "$pf_sendmail"
printf '%-44s %10s\n' "postfix smtp" "$pf_smtp"
printf '%-44s %10s\n' "postroom -> smtp -> postfix relay (maildir)" "$pr_smtp"
printf '\n%-44s %10s   (target >= 0.60)\n' "postroom / filesystem limit" "$(ratio "$pr" "$fs")"
printf '%-44s %10s   (target >= 2)\n' "postroom / postfix smtp" "$(ratio "$pr" "$pf_smtp")"
printf '%-44s %10s   (target >= 6)\n' "postroom / postfix sendmail" "$(ratio "$pr" "$pf_sendmail")"
printf '%-44s %10s   (1.0 = Postroom in front costs nothing)\n' "postroom->smtp->postfix / postfix smtp" "$(ratio "$pr_smtp" "$pf_smtp")"
echo "RESULT compare messages=$n postroom=$pr fslimit=$fs postfix_sendmail=$pf_sendmail postfix_smtp=$pf_smtp postroom_smtp_relay=$pr_smtp" \
  "limit_ratio=$(ratio "$pr" "$fs") smtp_ratio=$(ratio "$pr" "$pf_smtp") sendmail_ratio=$(ratio "$pr" "$pf_sendmail")" \
  "p50_ms=$(field p50_ms "$pr_line") p99_ms=$(field p99_ms "$pr_line") peak_rss_mb=$(field peak_rss_mb "$pr_line")"

#!/usr/bin/env bash
# Postroom against its anchors, in one run, on the same messages and with the same durability
# (an fsync per queued file and per delivered file, and of the directories):
#   - the filesystem limit: ../shared/bench/fslimit.c --sync file+dir --queue -j 8 (the target's
#     reference), and -j 4 as a second row (C, no parsing or routing)
#   - Postfix delivering into Maildirs through sendmail and over SMTP (../shared/bench/run-postfix.sh),
#     when postfix is installed (apt-get install -y postfix; this script never installs it)
#   - Postroom whose last hop is an smtp connector into a throwaway Postfix relay (postfix-relay.sh:
#     its own config dir and loopback port) delivering into a Maildir: the same path as "postfix smtp"
#     with Postroom in front (needs root and Postfix; measured once, after the rounds)
# Every measurement runs RUNS times, interleaved (postroom, fslimit -j 8, fslimit -j 4, postfix
# sendmail, postfix smtp; then again), because the disk speeds up and slows down between runs.
# It prints every run, the medians, the ratios per run and their medians, and the CPU time per
# message of Postroom's daemon and of fslimit, both from the rusage wait4(2) returns with the
# process (user + system), which hardly depends on the neighbours on a shared machine.
#
# usage: Benchmarks/compare.sh N [WORKDIR]
#   N          messages per measurement (e.g. 2000)
#   WORKDIR    scratch folder (default: a fresh mktemp -d, removed afterwards)
# environment:
#   RUNS           rounds of measurements (default 5)
#   GENMAIL_ARGS   genmail.py options (default "--users alice": one recipient per message)
#   FSLIMIT_JOBS   fslimit thread counts, one row each (default "8 4"; the first is the target's)
#   SKIP_POSTFIX=1 leave Postfix out even when it is installed
#   SETTLE_SECONDS seconds to wait (after a sync) before each measurement (default 0). On ext4
#                  without a journal (this machine's root), creating a file skips every inode of its
#                  group freed in the last 60 s (ext4's recently_deleted(); 360 s while the inode
#                  table block is still dirty), so a run straight after another's clean-up pays for
#                  it in system time. 65 makes no measurement pay for the previous one's
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
runs=${RUNS:-5}
read -r -a jobs_list <<<"${FSLIMIT_JOBS:-8 4}"
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "NA" && b + 0 > 0) printf "%.2f", a / b; else print "NA" }'; }
median() { # median of the words given (NA ignored); NA when there are none
  printf '%s\n' "$@" | grep -v '^NA$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# with_cpu CMD...: runs CMD, then prints "cpu_user_s=U cpu_sys_s=S" from the rusage wait4 returns.
with_cpu() {
  python3 -c '
import os, sys
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
sys.stdout.flush()
print("cpu_user_s=%.4f cpu_sys_s=%.4f" % (usage.ru_utime, usage.ru_stime))
sys.exit(os.waitstatus_to_exitcode(status))
' "$@"
}

have_postfix=false
if [ "${SKIP_POSTFIX:-0}" != 1 ] && command -v postfix >/dev/null && [ -x /usr/sbin/sendmail ]; then
  have_postfix=true
else
  echo "== postfix: not installed (apt-get install -y postfix) or SKIP_POSTFIX=1; left out" >&2
fi

settle() { [ "${SETTLE_SECONDS:-0}" -gt 0 ] && sync && sleep "$SETTLE_SECONDS"; return 0; }

declare -A rate cpu user sys
add() { # add KEY VALUE into an array named by $1
  local -n table=$1
  table[$2]="${table[$2]:-} $3"
}

for round in $(seq 1 "$runs"); do
  settle
  echo "== round $round of $runs: postroom bench --from ($n messages)" >&2
  line=$(cd "$repo" && "$postroom" bench --from "$work/msgs" | tee >(cat >&2) | grep '^RESULT postroom')
  add rate postroom "$(field msgs_per_s "$line")"
  add cpu postroom "$(field cpu_ms_per_msg "$line")"
  add user postroom "$(field cpu_user_ms_per_msg "$line")"
  add sys postroom "$(field cpu_sys_ms_per_msg "$line")"
  add rate p50 "$(field p50_ms "$line")"
  add rate p99 "$(field p99_ms "$line")"
  add rate rss "$(field peak_rss_mb "$line")"

  for j in "${jobs_list[@]}"; do
    settle
    echo "== round $round of $runs: fslimit --sync file+dir --queue -j $j" >&2
    rm -rf "$work/fsl-src" "$work/fsl-dst"
    cp -r "$work/msgs" "$work/fsl-src"
    sync
    out=$(with_cpu "$work/fslimit" "$work/fsl-src" "$work/fsl-dst" --sync file+dir --queue -j "$j" | tee >(cat >&2))
    rm -rf "$work/fsl-src" "$work/fsl-dst"
    count=$(awk '{ for (i = 1; i < NF; i++) if ($i == "messages") print $(i + 1) }' <<<"$out")
    add rate "fslimit$j" "$(awk '{ for (i = 1; i < NF; i++) if ($i == "msgs/s") print $(i + 1) }' <<<"$out")"
    u=$(field cpu_user_s "$(tail -1 <<<"$out")") s=$(field cpu_sys_s "$(tail -1 <<<"$out")")
    add user "fslimit$j" "$(awk -v u="$u" -v n="$count" 'BEGIN { printf "%.4f", u * 1000 / n }')"
    add sys "fslimit$j" "$(awk -v s="$s" -v n="$count" 'BEGIN { printf "%.4f", s * 1000 / n }')"
    add cpu "fslimit$j" "$(awk -v u="$u" -v s="$s" -v n="$count" 'BEGIN { printf "%.4f", (u + s) * 1000 / n }')"
  done

  if $have_postfix; then
    for mode in sendmail smtp; do
      settle
      echo "== round $round of $runs: postfix $mode" >&2
      out=$("$shared/run-postfix.sh" "$n" "$work/postfix" "$mode" | tee >(cat >&2) | tail -1)
      # run-postfix.sh prints an integer msgs/s; recompute it from its seconds for one decimal.
      secs=$(awk '{ for (i = 1; i < NF; i++) if ($i == "seconds") print $(i + 1) }' <<<"$out")
      value=$(awk -v n="$n" -v s="$secs" 'BEGIN { if (s + 0 > 0) printf "%.1f", n / s; else print "NA" }')
      # A run that timed out (deliveries short of expected) has no meaningful rate.
      got=$(awk '{ for (i = 1; i < NF; i++) if ($i == "deliveries") print $(i + 1) }' <<<"$out")
      [ "${got%/*}" = "${got#*/}" ] || value=NA
      add rate "postfix_$mode" "$value"
    done
  else
    add rate postfix_sendmail NA
    add rate postfix_smtp NA
  fi
done

# Postroom in front of Postfix: the smtp connector into a throwaway relay (once, after the rounds).
pr_smtp=NA
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
  [ -n "${pr_smtp_line:-}" ] && pr_smtp=$(field msgs_per_s "$pr_smtp_line")
else
  echo "== postroom -> smtp -> postfix relay: needs root and postfix; left out" >&2
fi

# Ratios per round (same round = same disk weather).
ratios() { # ratios A B: A[i]/B[i] for each round
  local -a a b
  read -r -a a <<<"$1"
  read -r -a b <<<"$2"
  local out="" i
  for i in "${!a[@]}"; do out+=" $(ratio "${a[$i]}" "${b[$i]:-NA}")"; done
  echo "$out"
}
row() { # row LABEL VALUES TARGET
  # shellcheck disable=SC2086  # the values are a list of words
  printf '%-44s %10s   %-24s %s\n' "$1" "$(median $2)" "$3" "$(tr -s ' ' <<<"$2" | sed 's/^ //; s/ /, /g')"
}
first=${jobs_list[0]}

printf '\n%s\n' "$n messages ($GENMAIL_ARGS), $runs rounds interleaved; median, then every run in order"
printf '%-44s %10s   %-24s %s\n' "throughput (msgs/s)" "median" "target" "runs"
row "postroom bench --from" "${rate[postroom]}" ""
for j in "${jobs_list[@]}"; do row "fslimit --sync file+dir --queue -j $j" "${rate[fslimit$j]}" ""; done
row "postfix sendmail" "${rate[postfix_sendmail]}" ""
row "postfix smtp" "${rate[postfix_smtp]}" ""
r_limit=$(ratios "${rate[postroom]}" "${rate[fslimit$first]}")
r_smtp=$(ratios "${rate[postroom]}" "${rate[postfix_smtp]}")
r_sendmail=$(ratios "${rate[postroom]}" "${rate[postfix_sendmail]}")
row "postroom / fslimit -j $first" "$r_limit" ">= 1.0"
for j in "${jobs_list[@]:1}"; do row "postroom / fslimit -j $j" "$(ratios "${rate[postroom]}" "${rate[fslimit$j]}")" ""; done
row "postroom / postfix smtp" "$r_smtp" ">= 3"
row "postroom / postfix sendmail" "$r_sendmail" ">= 10"
printf '%-44s %10s   %-24s\n' "postroom -> smtp -> postfix relay (maildir)" "$pr_smtp" "once, after the rounds"
printf '%-44s %10s   %-24s\n' "postroom->smtp->postfix / postfix smtp" "$(ratio "$pr_smtp" "$(median ${rate[postfix_smtp]})")" "1.0 = Postroom costs nothing"

printf '\n%-44s %10s   %-24s %s\n' "CPU per message (ms, user + system)" "median" "user / system medians" "runs"
# shellcheck disable=SC2086
printf '%-44s %10s   %-24s %s\n' "postroom daemon" "$(median ${cpu[postroom]})" "$(median ${user[postroom]}) / $(median ${sys[postroom]})" \
  "$(tr -s ' ' <<<"${cpu[postroom]}" | sed 's/^ //; s/ /, /g')"
for j in "${jobs_list[@]}"; do
  # shellcheck disable=SC2086
  printf '%-44s %10s   %-24s %s\n' "fslimit -j $j" "$(median ${cpu[fslimit$j]})" "$(median ${user[fslimit$j]}) / $(median ${sys[fslimit$j]})" \
    "$(tr -s ' ' <<<"${cpu[fslimit$j]}" | sed 's/^ //; s/ /, /g')"
done
c_limit=$(ratios "${cpu[postroom]}" "${cpu[fslimit$first]}")
row "postroom / fslimit -j $first CPU" "$c_limit" "<= 2"

# shellcheck disable=SC2086
echo "RESULT compare messages=$n runs=$runs postroom=$(median ${rate[postroom]}) fslimit=$(median ${rate[fslimit$first]})" \
  "fslimit_jobs=$first postfix_sendmail=$(median ${rate[postfix_sendmail]}) postfix_smtp=$(median ${rate[postfix_smtp]}) postroom_smtp_relay=$pr_smtp" \
  "limit_ratio=$(median $r_limit) smtp_ratio=$(median $r_smtp) sendmail_ratio=$(median $r_sendmail)" \
  "postroom_cpu_ms_per_msg=$(median ${cpu[postroom]}) fslimit_cpu_ms_per_msg=$(median ${cpu[fslimit$first]}) cpu_ratio=$(median $c_limit)" \
  "p50_ms=$(median ${rate[p50]}) p99_ms=$(median ${rate[p99]}) peak_rss_mb=$(median ${rate[rss]})"

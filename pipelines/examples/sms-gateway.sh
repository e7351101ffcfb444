#!/bin/sh
# sms-gateway.sh RECIPIENT QUEUE-ID
#
# A stand-in SMS gateway for Postroom's agent connector (pipelines/agent.json5). Postroom runs
# it once per recipient, without a shell, with the message on standard input, the spool as
# working directory and only PATH, HOME=/, POSTROOM_SENDER, POSTROOM_RECIPIENT and
# POSTROOM_QUEUE_ID in the environment.
#
# "Sending" writes the message to  sms/outbox/<queue id>-<digits>.txt  under the spool
# (SMS_OUTBOX overrides the folder when the script is run by hand). The file is written under a
# dot-name and renamed, so a reader never sees half a message, and a repeated delivery of the
# same queue entry (after a crash) replaces the file instead of sending a second SMS.
#
# Exit status, as Postroom reads it (Postfix pipe(8) and <sysexits.h> conventions):
#   0   sent
#   75  EX_TEMPFAIL: the gateway is down (the marker file sms/gateway-down exists, or
#       SMS_GATEWAY_DOWN names another); Postroom keeps the message queued and retries
#   64  EX_USAGE: not a valid international number; the first output line starts with the
#       RFC 3463 code 5.1.3, which Postroom uses in the non-delivery report
set -u

recipient=${1:?usage: sms-gateway.sh RECIPIENT QUEUE-ID}
queue_id=${2:?usage: sms-gateway.sh RECIPIENT QUEUE-ID}
outbox=${SMS_OUTBOX:-sms/outbox}
down_marker=${SMS_GATEWAY_DOWN:-sms/gateway-down}

# The recipient is the typed address as routed (SMS:+15551230); the gateway wants the number.
number=${recipient#SMS:}
number=${number#sms:}
digits=${number#+}

# E.164: a plus sign and 7 to 15 digits. A bad number never becomes good: fail at once.
valid=yes
case $number in +*) ;; *) valid=no ;; esac
case $digits in '' | *[!0-9]*) valid=no ;; esac
if [ "$valid" = yes ] && { [ ${#digits} -lt 7 ] || [ ${#digits} -gt 15 ]; }; then valid=no; fi
if [ "$valid" = no ]; then
    echo "5.1.3 invalid SMS number '$number' (expected +<7 to 15 digits>)"
    exit 64
fi

if [ -e "$down_marker" ]; then
    echo "SMS gateway is down ($down_marker exists); will retry"
    exit 75
fi

# Any local trouble (disk full, permissions) is temporary from the sender's point of view.
mkdir -p "$outbox" || exit 75
temporary="$outbox/.$queue_id-$digits.tmp"
cat > "$temporary" || { rm -f "$temporary"; exit 75; }
mv -f "$temporary" "$outbox/$queue_id-$digits.txt" || exit 75
echo "sent to $number"
exit 0

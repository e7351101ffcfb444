#!/usr/bin/env bash
# A throwaway Postfix relay for benchmarks: its own configuration, queue and data directories
# under DIR (postfix -c DIR), smtpd on 127.0.0.1:PORT, everything for sink.test delivered by
# virtual(8) into the Maildir DIR/mail/sink/. The machine's /etc/postfix is never changed.
#
# usage: Benchmarks/postfix-relay.sh start DIR PORT     (prints the Maildir path)
#        Benchmarks/postfix-relay.sh stop DIR
# Needs root and Postfix (apt-get install -y postfix).
set -euo pipefail
cmd=${1:?start|stop} dir=${2:?DIR}
case $cmd in
stop) postfix -c "$dir" stop >/dev/null 2>&1 || true; exit 0 ;;
start) port=${3:?PORT} ;;
*) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
mkdir -p "$dir/queue" "$dir/data" "$dir/mail/sink/new" "$dir/mail/sink/cur" "$dir/mail/sink/tmp"
chmod 755 "$dir" "$dir/mail"
chown postfix "$dir/data"
chown -R nobody:nogroup "$dir/mail"
printf '@sink.test sink/\n' >"$dir/vmailbox"
cat >"$dir/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $dir/maillog
maillog_file_prefixes = /tmp, /var
virtual_mailbox_domains = sink.test
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = texthash:$dir/vmailbox
virtual_minimum_uid = 1
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(id -g nobody)
virtual_destination_concurrency_limit = 20
default_process_limit = 100
biff = no
CF
cat >"$dir/master.cf" <<CF
127.0.0.1:$port inet n - n - 20 smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
CF
postfix -c "$dir" start >/dev/null 2>&1
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { echo "$dir/mail/sink"; exit 0; }
  sleep 0.1
done
echo "postfix-relay.sh: Postfix did not start listening on $port; see $dir/maillog" >&2
exit 1

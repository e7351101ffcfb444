#!/bin/sh
# Installs Postroom as a systemd service. Run as root from the repository root:
#
#   contrib/install.sh                 build (release), install, create user, groups and spool
#   DESTDIR=/tmp/stage contrib/install.sh --binary PATH
#                                      stage the files under DESTDIR (packaging, tests); no
#                                      users or groups are created and systemctl is not called
#
# What it installs:
#   /usr/local/bin/postroom            the binary
#   /etc/postroom/default.json5        the default pipeline, with spool /var/spool/postroom and
#                                      permissions for the three groups below (kept if present)
#   /etc/postroom/directory.json5      the recipient directory (kept if present)
#   /etc/systemd/system/postroom.service
#   /var/spool/postroom                the spool, owned by postroom, mode 0711
#   /var/lib/prometheus/node-exporter/postroom.prom -> /var/spool/postroom/metrics.prom
#                                      when node_exporter's textfile folder exists
# Users and groups (names can be changed with the environment variables shown):
#   postroom                           the daemon's user and group
#   postroom-submit  (POSTROOM_SUBMIT_GROUP)   may drop files into pickup/ and replay/
#   postroom-gateway (POSTROOM_GATEWAY_GROUP)  may read and delete drop directory files
#   postroom-mail    (POSTROOM_MAIL_GROUP)     may read the Maildirs (add Dovecot's mail user)
# The postroom user is a member of the three groups, so it can give them its folders and files.
set -eu

binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

root="${DESTDIR:-}"
submit="${POSTROOM_SUBMIT_GROUP:-postroom-submit}"
gateway="${POSTROOM_GATEWAY_GROUP:-postroom-gateway}"
mail="${POSTROOM_MAIL_GROUP:-postroom-mail}"
cd "$(dirname "$0")/.."

if [ -z "$binary" ]; then
  swift build -c release
  binary=.build/release/postroom
fi
[ -x "$binary" ] || { echo "install.sh: $binary is not an executable; build first or pass --binary PATH" >&2; exit 1; }

if [ -z "$root" ]; then
  getent group postroom >/dev/null || groupadd --system postroom
  for group in "$submit" "$gateway" "$mail"; do
    getent group "$group" >/dev/null || groupadd --system "$group"
  done
  id postroom >/dev/null 2>&1 || useradd --system --gid postroom --home-dir /var/spool/postroom \
    --no-create-home --shell /usr/sbin/nologin postroom
  usermod --append --groups "$submit,$gateway,$mail" postroom
fi

install -d -m 0755 "$root/usr/local/bin" "$root/etc/postroom" "$root/etc/systemd/system"
install -m 0755 "$binary" "$root/usr/local/bin/postroom"
if [ ! -e "$root/etc/postroom/default.json5" ]; then
  sed -e 's|spool: "spool",|spool: "/var/spool/postroom",|' \
      -e "s|maxMessagesPerMinute: 0 }|maxMessagesPerMinute: 0, permissions: { group: \"$submit\" } }|" \
      -e "s|filePerRecipient: true }|filePerRecipient: true, permissions: { group: \"$gateway\" } }|" \
      -e "s|dropDirectory: \"drop/outbound\" }|dropDirectory: \"drop/outbound\", permissions: { group: \"$gateway\" } }|" \
      -e "s|path: \"mailboxes/{user}\" }|path: \"mailboxes/{user}\", permissions: { group: \"$mail\" } }|" \
      pipelines/default.json5 > "$root/etc/postroom/default.json5"
  chmod 0644 "$root/etc/postroom/default.json5"
fi
[ -e "$root/etc/postroom/directory.json5" ] || install -m 0644 pipelines/directory.json5 "$root/etc/postroom/directory.json5"
install -m 0644 contrib/postroom.service "$root/etc/systemd/system/postroom.service"
install -d -m 0711 "$root/var/spool/postroom"
# node_exporter's textfile collector (Debian's prometheus-node-exporter reads this folder) gets
# Postroom's metrics.prom through a symlink: the file is 0644 and the spool is searchable.
textfile="$root/var/lib/prometheus/node-exporter"
if [ -d "$textfile" ] && [ ! -e "$textfile/postroom.prom" ]; then
  ln -s /var/spool/postroom/metrics.prom "$textfile/postroom.prom"
fi

if [ -z "$root" ]; then
  chown postroom:postroom /var/spool/postroom
  if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
  echo "installed; start with: systemctl enable --now postroom"
  echo "check with: postroom check /etc/postroom/default.json5"
fi

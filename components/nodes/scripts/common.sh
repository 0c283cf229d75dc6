# edge-registry node helpers: POSIX sh, coreutils, systemd or OpenRC. Runs as root.
set -eu
umask 077
PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export PATH

# a client that went away (SIGPIPE, SIGHUP) does not cut a run short: it finishes under its lock
say() { printf 'edge-registry: %s\n' "$*" 2>/dev/null || true; }
fail() { printf 'edge-registry: %s\n' "$*" >&2 2>/dev/null || true; exit 1; }

# sha256 of a file, or "absent" when there is none
sha_of() { if [ -e "$1" ]; then sha256sum < "$1" | cut -d' ' -f1; else echo absent; fi; }

# "UID:GID MODE" of a file (a new one: root 0600)
meta_of() { if [ -e "$1" ]; then stat -c '%u:%g %a' "$1"; else echo "0:0 600"; fi; }

# put SRC DEST [MODE [OWNER]]: temp file beside DEST (OWNER, default root; MODE, default 0600),
# flushed to disk, renamed over DEST. A reader (k3s) sees the old or the new DEST, never a partial one.
put() {
  tmp=$(mktemp "$(dirname "$2")/.$(basename "$2").edge-registry.XXXXXX") || fail "cannot create a temp file beside $2"
  cat "$1" > "$tmp" || fail "cannot write $tmp"
  chown "${4:-0:0}" "$tmp" || fail "cannot make $tmp owned by ${4:-0:0}"
  chmod "${3:-600}" "$tmp" || fail "cannot set mode ${3:-600} on $tmp"
  sync "$tmp" 2>/dev/null || sync
  mv -f "$tmp" "$2" || fail "cannot rename $tmp to $2"
  tmp=
}

# put SRC DEST only when the bytes differ (a no-op run writes nothing)
put_changed() { [ "$(sha_of "$1")" = "$(sha_of "$2")" ] || put "$1" "$2" "${3:-600}" "${4:-0:0}"; }

# put SRC DEST with the owner and mode recorded in META (meta_of), or root 0600 without one
put_as() {
  if [ -f "$3" ]; then set -- "$1" "$2" $(cat "$3"); else set -- "$1" "$2" 0:0 600; fi
  case "$3 ${4:-}" in [0-9]*:[0-9]*\ [0-7]*) ;; *) fail "unexpected owner and mode record for $2: $3 ${4:-}" ;; esac
  put "$1" "$2" "$4" "$3"
}

# $sm: systemd | openrc | auto
resolve_service_manager() {
  case $sm in
    systemd|openrc) ;;
    auto)
      if command -v systemctl >/dev/null 2>&1; then sm=systemd
      elif command -v rc-service >/dev/null 2>&1; then sm=openrc
      else fail "neither systemctl nor rc-service found: set the node's service manager"; fi ;;
    *) fail "unknown service manager '$sm' (expected systemd, openrc or auto)" ;;
  esac
}

# systemd assigns a new InvocationID on every start: tells a restarted unit from the old one
invocation() {
  id=$(systemctl show -p InvocationID "$unit" 2>/dev/null || true)
  case $id in InvocationID=?*) echo "$id" ;; *) echo "" ;; esac
}

# restart $unit without waiting (k3s units have no start timeout: a blocking restart could hang);
# what it starts gets neither the node lock (fd 9) nor the ignored SIGHUP/SIGPIPE (guard.sh)
restart_unit() {
  case $sm in
    systemd)
      before=$(invocation)
      systemctl restart --no-block "$unit" 9<&- || fail "systemctl restart $unit failed" ;;
    openrc)
      (trap - HUP PIPE; exec timeout "$wait_s" rc-service "$unit" restart >/dev/null 2>&1 9<&-) || true ;;
  esac
}

unit_active() {
  case $sm in
    systemd)
      [ "$(systemctl is-active "$unit" 2>/dev/null || true)" = active ] || return 1
      [ -z "$before" ] || [ "$(invocation)" != "$before" ] ;;
    openrc)
      rc-service "$unit" status >/dev/null 2>&1 ;;
  esac
}

# wait up to $wait_s seconds for $unit to be active again (no early look without an
# InvocationID: the old process could still look active)
wait_active() {
  i=0
  if [ -n "$before" ] && unit_active; then return 0; fi
  while [ "$i" -lt "$wait_s" ]; do
    sleep 1
    i=$((i + 1))
    if unit_active; then return 0; fi
  done
  return 1
}

unit_logs() {
  case $sm in
    systemd) journalctl -u "$unit" -n 25 --no-pager 2>&1 || true ;;
    openrc) tail -n 25 "/var/log/$unit.log" 2>&1 || true ;;
  esac
}

# edge-registry apply: install the registries.yaml the program rendered, and the site CA beside
# it (https); restart only when either changed. The whole run holds the file's lock.
# Arguments: PATH UNIT SERVICE_MANAGER WAIT_SECONDS [LOCK_WAIT_SECONDS]. Stdin: the payload of
# components/nodes/payload.py apply_stdin() (checksums, then base64 sections).
path=$1 unit=$2 sm=$3 wait_s=$4 lock_wait=${5:-$(($4 * 2 + 60))}
side=$path.edge-registry
dir=$(dirname "$path")
tmp= before= work= locked=
resolve_service_manager
begin_write "$lock_wait" create

# 1. receive the payload and check it against its own checksums
read -r header || fail "no payload on stdin"
[ "$header" = "edge-registry-apply 1" ] || fail "unexpected payload format: $header"
expected= desired= restore= pending=no generation= ca=none ca_file= section=
while read -r word value; do
  if [ -n "$section" ]; then
    if [ "$word" = end ]; then section=; else printf '%s\n' "$word" >> "$work/$section.b64"; fi
    continue
  fi
  case $word in
    expected) expected=$value ;;
    desired) desired=$value ;;
    restore) restore=$value ;;
    generation) case $value in *[!0-9]*|'') fail "unexpected generation value: $value" ;; *) generation=$value ;; esac ;;
    ca) ca=$value ;;
    ca-file) ca_file=$value ;;
    pending) case $value in yes|no) pending=$value ;; *) fail "unexpected pending value: $value" ;; esac ;;
    begin)
      case $value in content|restore|owned|ca) section=$value; : > "$work/$section.b64" ;;
        *) fail "unexpected payload section: $value" ;; esac ;;
    *) fail "unexpected payload line: $word" ;;
  esac
done
for s in content owned; do
  [ -f "$work/$s.b64" ] || fail "payload has no $s"
  base64 -d < "$work/$s.b64" > "$work/$s" || fail "payload $s is not base64"
done
[ "$(sha_of "$work/content")" = "$desired" ] || fail "payload damaged in transit (content checksum)"
if [ "$restore" != absent ]; then
  base64 -d < "$work/restore.b64" > "$work/restore" || fail "payload has no restore content"
  [ "$(sha_of "$work/restore")" = "$restore" ] || fail "payload damaged in transit (restore checksum)"
fi
if [ "$ca" != none ]; then
  beside "$ca_file"
  base64 -d < "$work/ca.b64" > "$work/ca" || fail "payload has no CA"
  [ "$(sha_of "$work/ca")" = "$ca" ] || fail "payload damaged in transit (CA checksum)"
fi

# 2. the file must still be what the program read and merged
[ ! -L "$path" ] || fail "$path is a symlink: edge-registry replaces the file by rename and would break the link"
current=$(sha_of "$path")
[ "$current" = "$expected" ] || [ "$current" = "$desired" ] || fail "$path changed since edge-registry read it in this run (read sha256 $expected, now $current). Nothing was written. Run 'pulumi up' again: it reads the file again and merges the change."

# 3. keep the pristine original (bytes, owner, mode), once, before anything of ours is written
chmod 700 "$side"
[ -z "$ca_file" ] || rm -f "$dir/.$(basename "$ca_file").edge-registry."*
if [ ! -f "$side/original" ] && [ ! -f "$side/original.absent" ]; then
  if [ "$current" = absent ]; then : > "$side/original.absent"
  else meta_of "$path" > "$work/meta"; put "$work/meta" "$side/original.meta"; put "$path" "$side/original"; fi
fi

# the CA file: ours to write when it differs, ours to remove when the site no longer has one
installed_ca=$(cat "$side/ca-file" 2>/dev/null || true)
[ -z "$installed_ca" ] || beside "$installed_ca"
ca_changed=no
if [ "$ca" != none ]; then
  [ ! -L "$ca_file" ] || fail "$ca_file is a symlink: edge-registry replaces the file by rename"
  [ "$(sha_of "$ca_file")" = "$ca" ] || ca_changed=yes
  [ -z "$installed_ca" ] || [ "$installed_ca" = "$ca_file" ] || ca_changed=yes
elif [ -n "$installed_ca" ]; then
  ca_changed=yes
fi

# put the CA file of this payload in place (or the one edge-registry found there back)
install_ca() {
  if [ -n "$installed_ca" ] && [ "$installed_ca" != "$ca_file" ]; then
    if [ -f "$side/ca-original" ]; then put "$side/ca-original" "$installed_ca" 644; else rm -f "$installed_ca"; fi
    rm -f "$side/ca-original" "$side/ca-file"
  fi
  if [ "$ca" != none ]; then
    if [ ! -f "$side/ca-file" ] && [ -f "$ca_file" ]; then put "$ca_file" "$side/ca-original"; fi
    echo "$ca_file" > "$work/ca-file"
    put_changed "$work/ca-file" "$side/ca-file"
    put_changed "$work/ca" "$ca_file" 644
  fi
}

# record: what we wrote, the keys we own, what destroy puts back (only what differs)
record() {
  if [ "$restore" = absent ]; then [ -f "$side/restore.absent" ] || : > "$side/restore.absent"; rm -f "$side/restore"
  else put_changed "$work/restore" "$side/restore"; rm -f "$side/restore.absent"; fi
  put_changed "$work/owned" "$side/owned"
  echo "$desired" > "$work/written"
  put_changed "$work/written" "$side/written.sha256"
  # what this payload said besides the file: a converged node re-emits it (stable previews)
  echo "$expected $pending${generation:+ $generation}" > "$work/applied"
  put_changed "$work/applied" "$side/applied"
}

# 4. unchanged: write nothing, restart nothing (unless an earlier run was cut off before its restart)
if [ "$current" = "$desired" ] && [ "$ca_changed" = no ]; then
  record
  if [ ! -f "$side/restart-pending" ]; then say "$path unchanged; $unit not restarted"; exit 0; fi
  say "$path unchanged; finishing the restart of $unit an earlier run did not complete"
  restart_unit
  wait_active || fail "$unit did not become active within ${wait_s}s. Last log lines of $unit:
$(unit_logs)"
  rm -f "$side/restart-pending"
  say "$unit active"
  exit 0
fi

# 5. back up, rename into place (the CA first: the new file names it), restart, wait
[ "$current" = "$desired" ] || say "updating $path (sha256 $current -> $desired)"
[ "$ca_changed" = no ] || say "updating the CA file ${ca_file:-$installed_ca}"
# the file keeps its owner and mode, without any access for others: it holds the client password
set -- $(meta_of "$path")
owner=$1 mode=$(printf '%o' $((0$2 & 0770)))
meta_of "$path" > "$work/meta"
put "$work/meta" "$side/backup.meta"
if [ "$current" = absent ]; then : > "$side/backup.absent"; rm -f "$side/backup"
else put "$path" "$side/backup"; rm -f "$side/backup.absent"; fi
ca_before=${installed_ca:-$ca_file}
rm -f "$side/ca-backup" "$side/ca-backup.absent"
if [ -n "$ca_before" ]; then
  if [ -f "$ca_before" ]; then put "$ca_before" "$side/ca-backup"; else : > "$side/ca-backup.absent"; fi
fi
# install_ca rewrites or drops the records of which CA file is edge-registry's: a failed start
# puts them back with the CA file, or a CA it put back would be nobody's (never removed)
rm -rf "$side/ca-record"
mkdir "$side/ca-record" || fail "cannot create $side/ca-record"
for f in ca-file ca-original; do [ ! -f "$side/$f" ] || put "$side/$f" "$side/ca-record/$f"; done
: > "$side/restart-pending"
install_ca
put_changed "$work/content" "$path" "$mode" "$owner"
say "restarting $unit"
restart_unit
if wait_active; then
  record
  rm -rf "$side/ca-record"
  rm -f "$side/restart-pending"
  say "$unit active with the new $path"
  exit 0
fi

# 6. it did not come back: restore the previous file, restart again, fail with the unit's log
logs=$(unit_logs)
say "$unit not active after ${wait_s}s: restoring the previous $path" >&2
if [ -f "$side/backup.absent" ]; then rm -f "$path"; else put_as "$side/backup" "$path" "$side/backup.meta"; fi
if [ -f "$side/ca-backup" ]; then put "$side/ca-backup" "$ca_before" 644
elif [ -f "$side/ca-backup.absent" ]; then rm -f "$ca_before"; fi
for f in ca-file ca-original; do
  if [ -f "$side/ca-record/$f" ]; then put "$side/ca-record/$f" "$side/$f"; else rm -f "$side/$f"; fi
done
rm -rf "$side/ca-record"
restart_unit
if wait_active; then
  rm -f "$side/restart-pending"
  outcome="the previous $path is back and $unit is active again"
else
  outcome="the previous $path is back but $unit is still not active"
fi
fail "$unit did not become active within ${wait_s}s with the new $path; $outcome. Last log lines of $unit:
$logs"

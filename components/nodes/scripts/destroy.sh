# edge-registry destroy: give the node back the registries.yaml it had before (bytes, owner and
# mode) and remove the site CA file (runs from Pulumi's stored state), under the file's lock.
# Arguments: PATH UNIT SERVICE_MANAGER WAIT_SECONDS [LOCK_WAIT_SECONDS]. Stdin: unused.
path=$1 unit=$2 sm=$3 wait_s=$4 lock_wait=${5:-$(($4 * 2 + 60))}
side=$path.edge-registry
dir=$(dirname "$path")
tmp= before= work= locked=
check_path
if [ ! -e "$side" ] && [ ! -L "$side" ]; then say "no edge-registry record beside $path: nothing to undo"; exit 0; fi
resolve_service_manager
begin_write "$lock_wait" keep
if [ ! -f "$side/original" ] && [ ! -f "$side/original.absent" ]; then
  say "no edge-registry record beside $path: nothing to undo"; exit 0
fi
[ ! -L "$path" ] || fail "$path is a symlink: edge-registry does not write through it"
ca_file=$(cat "$side/ca-file" 2>/dev/null || true)
[ -z "$ca_file" ] || beside "$ca_file"

current=$(sha_of "$path")
written=$(cat "$side/written.sha256" 2>/dev/null || echo none)
if [ -f "$side/restore.absent" ]; then target=absent
elif [ -f "$side/restore" ]; then target=$(sha_of "$side/restore")
else target=none; fi
if [ -f "$side/original.absent" ]; then original=absent; else original=$(sha_of "$side/original"); fi

# 1. decide: ours to undo, already undone (or never written), or changed by someone else
if [ "$current" = "$written" ] && [ "$target" != none ]; then
  if [ "$current" != "$target" ]; then
    : > "$side/restart-pending"
    if [ "$target" = absent ]; then rm -f "$path"; else put_as "$side/restore" "$path" "$side/original.meta"; fi
    echo "$target" > "$side/written.sha256"
    say "restored $path to what it was before edge-registry"
  fi
elif [ "$current" = "$target" ] || [ "$current" = "$original" ]; then
  say "$path holds nothing of edge-registry's"
else
  fail "$path was changed after edge-registry last wrote it (expected sha256 $written, found $current). It was left untouched so that change is not lost. To remove only the mirror entry and keep that change: run 'pulumi up' (it merges the change), then 'pulumi destroy' again. To keep the file exactly as it is now: on the node run 'sudo rm -rf $side', then 'pulumi destroy' again. The bytes the node had before edge-registry are in $side/original."
fi

# the CA file edge-registry installed goes (or the file it found there comes back)
if [ -n "$ca_file" ]; then
  : > "$side/restart-pending"
  if [ -f "$side/ca-original" ]; then put "$side/ca-original" "$ca_file" 644; else rm -f "$ca_file"; fi
  rm -f "$side/ca-file" "$side/ca-original"
  say "removed the CA file $ca_file"
fi

# 2. one restart when the file changed (or an earlier destroy was cut off before its restart)
if [ -f "$side/restart-pending" ]; then
  say "restarting $unit"
  restart_unit
  wait_active || fail "$unit did not become active within ${wait_s}s after $path was restored; run 'pulumi destroy' again to retry the restart. Last log lines of $unit:
$(unit_logs)"
  say "$unit active"
fi
rm -rf "$side"

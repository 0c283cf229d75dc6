# edge-registry read: print the node's registries.yaml and edge-registry's record of it.
# Arguments: PATH. The output holds the file (maybe credentials): it is a Pulumi secret.
# Writes nothing: no temp file; a shared hold of the file's lock (when there is one) keeps an
# apply or destroy from changing the file and the record half-way through this read.
path=$1
side=$path.edge-registry
locked=
check_path
[ ! -L "$path" ] || fail "$path is a symlink: edge-registry replaces the file by rename and would break the link"
[ ! -e "$path" ] || [ -f "$path" ] || fail "$path exists but is not a regular file"
check_side
lock_side 20 -s || true
section() { printf 'begin %s\n' "$1"; base64 < "$2"; printf 'end %s\n' "$1"; }
# one read of the file, so the checksum and the content printed always match
file=absent content=
if [ -f "$path" ]; then
  content=$(base64 < "$path") || fail "cannot read $path"
  file=$(printf '%s\n' "$content" | base64 -d | sha256sum | cut -d' ' -f1)
fi
echo "edge-registry-read 2"
echo "file $file"
if [ -f "$side/written.sha256" ]; then echo "written $(cat "$side/written.sha256")"; else echo "written none"; fi
if [ -f "$side/original" ]; then echo "original $(sha_of "$side/original")"
elif [ -f "$side/original.absent" ]; then echo "original absent"
else echo "original none"; fi
if [ -f "$side/restart-pending" ]; then echo "restart-pending yes"; else echo "restart-pending no"; fi
# the payload fields of the run that last converged the node (components/nodes/plan.py)
if [ -f "$side/applied" ]; then echo "applied $(cat "$side/applied")"; else echo "applied none"; fi
# the site CA edge-registry installed beside the file (https), by checksum
if [ -f "$side/ca-file" ]; then echo "ca $(sha_of "$(cat "$side/ca-file")")"; else echo "ca none"; fi
if [ -n "$content" ]; then printf 'begin content\n%s\nend content\n' "$content"
elif [ "$file" != absent ]; then printf 'begin content\nend content\n'; fi
if [ -f "$side/original" ]; then section original "$side/original"; fi
if [ -f "$side/owned" ]; then section owned "$side/owned"; fi
# the installed CA file itself (certificates only): which CAs the node trusts, for a CA renewal
if [ -f "$side/ca-file" ]; then ca_file=$(cat "$side/ca-file"); [ ! -f "$ca_file" ] || section ca "$ca_file"; fi

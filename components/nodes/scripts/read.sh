# edge-registry read: print the node's registries.yaml and edge-registry's record of it.
# Arguments: PATH. The output holds the file (maybe credentials): it is a Pulumi secret.
path=$1
side=$path.edge-registry
[ ! -L "$path" ] || fail "$path is a symlink: edge-registry replaces the file by rename and would break the link"
[ ! -e "$path" ] || [ -f "$path" ] || fail "$path exists but is not a regular file"
work=$(mktemp -d) || fail "cannot create a temp dir"
trap 'rm -rf "$work"' EXIT
section() { printf 'begin %s\n' "$1"; base64 < "$2"; printf 'end %s\n' "$1"; }
# read from a copy, so the checksum and the content printed always match
if [ -f "$path" ]; then cp "$path" "$work/file" || fail "cannot read $path"; fi
echo "edge-registry-read 2"
echo "file $(sha_of "$work/file")"
if [ -f "$side/written.sha256" ]; then echo "written $(cat "$side/written.sha256")"; else echo "written none"; fi
if [ -f "$side/original" ]; then echo "original $(sha_of "$side/original")"
elif [ -f "$side/original.absent" ]; then echo "original absent"
else echo "original none"; fi
if [ -f "$side/restart-pending" ]; then echo "restart-pending yes"; else echo "restart-pending no"; fi
# the payload fields of the run that last converged the node (components/node_plan.py)
if [ -f "$side/applied" ]; then echo "applied $(cat "$side/applied")"; else echo "applied none"; fi
# the site CA edge-registry installed beside the file (https), by checksum
if [ -f "$side/ca-file" ]; then echo "ca $(sha_of "$(cat "$side/ca-file")")"; else echo "ca none"; fi
if [ -f "$work/file" ]; then section content "$work/file"; fi
if [ -f "$side/original" ]; then section original "$side/original"; fi
if [ -f "$side/owned" ]; then section owned "$side/owned"; fi

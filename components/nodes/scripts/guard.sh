# edge-registry guards: what root may trust beside the file, and one run at a time per file.
# Needs stat, find and flock (util-linux, or busybox). Uses $path and $side.

# the path as the program sends it, and as k3s reads it: absolute and canonical
check_path() {
  case $path in /*) ;; *) fail "$path is not an absolute path: set the node's path in edge-registry:nodes" ;; esac
  case $path in
    *//*|*/./*|*/../*|*/.|*/..|*/)
      fail "$path is not a canonical path (no //, /./, /../ or trailing /): set the node's path in edge-registry:nodes to the file's own path" ;;
  esac
}

# why root must not trust $1 (nothing when it may): a symlink, owned by another user, writable
# by its group or others, or not a plain file or directory
distrust() {
  if [ -L "$1" ]; then echo "is a symlink"; return 0; fi
  if [ ! -f "$1" ] && [ ! -d "$1" ]; then echo "is not a regular file or directory"; return 0; fi
  _st=$(stat -c '%u %a' "$1" 2>/dev/null) || { echo "cannot be inspected"; return 0; }
  if [ "${_st% *}" != 0 ]; then echo "is owned by uid ${_st% *}, not root"
  elif [ $((0${_st#* } & 022)) -ne 0 ]; then echo "is writable by its group or by others (mode ${_st#* })"; fi
}

# every directory above the file, as written and as resolved, must be root's alone: root writes
# the file, its CA and what destroy puts back there
check_dirs() {
  _d=$(dirname "$path")
  while [ ! -e "$_d" ] && [ ! -L "$_d" ]; do _d=$(dirname "$_d"); done
  _real=$(cd -P "$_d" 2>/dev/null && pwd -P) || fail "cannot resolve the directory $_d of $path"
  for _d in "$_d" "$_real"; do
    while :; do
      _why=
      if [ -L "$_d" ]; then
        _uid=$(stat -c %u "$_d")
        [ "$_uid" = 0 ] || _why="is a symlink owned by uid $_uid, not root"
      else _why=$(distrust "$_d"); fi
      [ -z "$_why" ] || fail "the directory $_d $_why: edge-registry writes $path there as root and refuses a directory another user could change (such as anything under /tmp). Nothing was changed. Make every directory above the file root-owned and not group- or world-writable, or set another path on the node."
      [ "$_d" != / ] || break
      _d=$(dirname "$_d")
    done
  done
}

# the record beside the file: a root-owned directory with nothing in it another user could
# have changed or linked, or nothing at all
check_side() {
  [ -e "$side" ] || [ -L "$side" ] || return 0
  _bad=$side _why=$(distrust "$side")
  [ -n "$_why" ] || [ -d "$side" ] || _why="is not a directory"
  if [ -z "$_why" ]; then
    # (another run may be staging: an entry gone by the time it is looked at is skipped; begin_write
    # checks again under the lock)
    _bad=$(find "$side" \( -type l -o \( ! -type f ! -type d \) -o ! -user 0 -o -perm -020 -o -perm -002 \) -print 2>/dev/null |
      while IFS= read -r _f; do if [ -e "$_f" ] || [ -L "$_f" ]; then echo "$_f"; break; fi; done)
    [ -z "$_bad" ] || _why=$(distrust "$_bad")
  fi
  [ -z "$_why" ] || fail "$_bad $_why: edge-registry's record of $path must be root's alone (destroy writes it back as root), so it is not used. Nothing was changed. Find out who changed it; to make edge-registry forget this node instead: sudo rm -rf $side, then 'pulumi up' again."
}

# hold $side/lock for the whole run: wait at most $1 s; $2 exclusive (-x, apply and destroy:
# creates the record's directory, root 0700, when $3 is create) or shared (-s, read). A destroy
# removes the record while others wait: they take the lock again. Returns 1 when there is no
# record (and none to create). The restart commands close fd 9: no daemon keeps the lock.
lock_side() {
  _n=0
  while :; do
    if [ ! -d "$side" ]; then
      [ "${3:-}" = create ] || return 1
      mkdir -m 700 "$side" 2>/dev/null || [ -d "$side" ] || fail "cannot create $side"
      check_side
    fi
    # (a failed open does not end the script: a destroy may just have removed the record)
    if [ "$2" = -x ]; then
      { command exec 9>>"$side/lock"; } 2>/dev/null || { [ ! -d "$side" ] || fail "cannot open $side/lock"; continue; }
    elif [ -f "$side/lock" ]; then
      { command exec 9<"$side/lock"; } 2>/dev/null || continue
    else return 0; fi
    command -v flock >/dev/null 2>&1 || fail "flock not found on the node: install util-linux (or busybox flock); edge-registry locks $side/lock while it changes $path"
    if flock -n "$2" 9; then
      [ "$(stat -L -c '%d %i' /proc/self/fd/9)" != "$(stat -c '%d %i' "$side/lock" 2>/dev/null)" ] || { locked=yes; return 0; }
    elif [ "$_n" -ge $(($1 * 5)) ]; then
      fail "another edge-registry run holds the lock on $path ($side/lock) for more than $1s: an apply or destroy of this file, from this stack or from another one that names the same node and path. Nothing was changed by this run; run it again when the other one is done."
    else
      _n=$((_n + 1))
      sleep 0.2
    fi
    exec 9<&-
  done
}

# a run that changes the node: the checks above, the lock ($2: create the record, or keep: there
# is nothing to undo without one), what killed runs left (we hold the lock: they are dead; earlier versions
# staged in /tmp/tmp.*), a stage in the record. Staged files and temp files go on every exit,
# and, while the lock is held, a record without an original (nothing of ours was written).
begin_write() {
  check_path
  check_dirs
  check_side
  trap 'rm -rf "$work"; [ -z "$tmp" ] || rm -f "$tmp"; [ "$locked" != yes ] || [ -e "$side/original" ] || [ -e "$side/original.absent" ] || rm -rf "$side"' EXIT
  trap 'exit 1' INT TERM
  trap '' HUP PIPE
  [ "$2" != create ] || (umask 022; mkdir -p "$dir") || fail "cannot create $dir"
  lock_side "$1" -x "$2" || { say "no edge-registry record beside $path: nothing to undo"; exit 0; }
  check_side
  rm -rf "$side/stage" "$side/".*.edge-registry.* "$dir/.$(basename "$path").edge-registry."*
  for _old in "${TMPDIR:-/tmp}"/tmp.*; do
    # (an hour old at least: a run of the old version may still be using a fresh one)
    if [ -d "$_old" ] && [ ! -L "$_old" ] && [ -f "$_old/owned.b64" ] && [ "$(stat -c %u "$_old")" = 0 ] &&
      [ -n "$(find "$_old" -maxdepth 0 -mmin +60 2>/dev/null)" ]; then rm -rf "$_old"; fi
  done
  work=$side/stage
  mkdir "$work" || fail "cannot create $work"
}

# a CA file edge-registry writes or removes as root: beside the file, nothing else
beside() {
  case $1 in "$dir"/*/*|"$dir"/.|"$dir"/..|"$path"|"$side") ;; "$dir"/?*) return 0 ;; esac
  fail "the CA file must be beside $path, not '$1'"
}

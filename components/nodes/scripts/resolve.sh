# edge-registry resolve: does each image's manifest resolve through the node's mirror? Reads only.
# Arguments: PATH (registries.yaml). Stdin: the plan the program made from that file, as it read
# it (components/nodes/resolve.py): its checksum, the mirror endpoints in containerd's order with
# each one's CA file, TLS check and credentials, and the images. Each endpoint's host:port and CA
# file must be named in the file, so this asks nothing of a host the file does not name; and only
# HEAD (GET when the answer names no digest) of /v2/<repository>/manifests/<reference>, no
# redirect followed, no proxy, never the upstream registry: no fallback. Writes nothing.
path=$1
side=$path.edge-registry
locked=
check_path
[ ! -L "$path" ] || fail "$path is a symlink: edge-registry replaces the file by rename and would break the link"
[ -f "$path" ] || fail "$path does not exist: the node has no mirror, its runtime pulls from the upstream registries"
check_side
lock_side 20 -s || true
command -v curl >/dev/null 2>&1 || fail "curl not found on the node: install it to check image readiness"
content=$(cat "$path") || fail "cannot read $path"
plan=$(cat)
[ "$(printf '%s\n' "$plan" | head -n 1)" = "edge-registry-resolve 1" ] || fail "not an edge-registry resolve plan"
[ "$(printf '%s\n' "$plan" | sed -n 's/^file //p')" = "$(sha_of "$path")" ] ||
  fail "$path changed since it was read: run the check again"
nl='
'
# names TEXT: the file names TEXT whole (a host:port in a URL or a list, a path), not as a part of
# another word: 127.0.0.1:22 is not named by 127.0.0.1:2222, nor a mirror's host by its key
names() {
  case "$nl$content$nl" in *[\"\'/[:space:]]"$1"[\"\'/,[:space:]]*) return 0 ;; esac
  return 1
}
accept="application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

# every line checked before any request: a plan the file does not back is refused whole
printf '%s\n' "$plan" | while read -r word a b c d; do
  case $word in
    edge-registry-resolve|file) ;;
    endpoint)
      case $a in http://*|https://*) ;; *) fail "endpoint $a: expected http:// or https://" ;; esac
      hostport=${a#*://}
      case $hostport in ''|*[!A-Za-z0-9.:\[\]-]*) fail "endpoint $a: expected scheme://host[:port], nothing after" ;; esac
      names "$hostport" || fail "endpoint $a: $path names no such endpoint"
      case $b in
        -) ;;
        /*) case $b in *[!A-Za-z0-9._/-]*|*/../*) fail "CA file $b: not a plain absolute path" ;; esac
            names "$b" || fail "CA file $b: $path names no such file" ;;
        *) fail "CA file $b: expected an absolute path or -" ;;
      esac
      case $c in yes|no) ;; *) fail "endpoint $a: expected yes or no for skipping the TLS check" ;; esac
      case $d in -) ;; ''|*[!A-Za-z0-9+/=]*) fail "endpoint $a: the credentials are not base64" ;; esac ;;
    image)
      case $a in ''|/*|*/|*//*|.*|*/.*|*..*|*[!a-z0-9._/-]*) fail "image $a: not a repository name" ;; esac
      case $b in
        sha256:*) _hex=${b#sha256:}
          case $_hex in *[!a-f0-9]*) fail "image $a@$b: not a sha256 digest" ;; esac
          [ "${#_hex}" -eq 64 ] || fail "image $a@$b: not a sha256 digest" ;;
        ''|[.-]*|*[!A-Za-z0-9._-]*) fail "image $a:$b: not a tag" ;;
        *) [ "${#b}" -le 128 ] || fail "image $a:$b: the tag is longer than 128 characters" ;;
      esac ;;
    '') ;;
    *) fail "unexpected plan line: $word" ;;
  esac
done || exit 1

# ask_endpoint URL CA INSECURE AUTH REPOSITORY REFERENCE: curl's answer to a HEAD of the manifest
# (headers, then a "status" line, or curl's error); credentials go to curl on stdin, never in argv
ask_endpoint() {
  _url="$1/v2/$5/manifests/$6" _ca=$2 _insecure=$3 _auth=$4
  set -- -H "Accept: $accept" -I -w 'status %{http_code}\n' "$_url"
  [ "$_ca" = - ] || set -- --cacert "$_ca" "$@"
  [ "$_insecure" = no ] || set -- -k "$@"
  if [ "$_auth" = - ]; then _cfg=; else _cfg="header = \"Authorization: Basic $_auth\""; fi
  printf '%s\n' "$_cfg" | curl -sS -K - --noproxy '*' --proto '=http,https' --connect-timeout 5 --max-time 20 "$@" 2>&1
}

echo "edge-registry-resolve 1"
n=0
printf '%s\n' "$plan" | while read -r word repository reference rest; do
  [ "$word" = image ] || continue
  n=$((n + 1))
  printf '%s\n' "$plan" | while read -r kind url ca insecure auth; do
    [ "$kind" = endpoint ] || continue
    out=$(ask_endpoint "$url" "$ca" "$insecure" "$auth" "$repository" "$reference") && rc=0 || rc=$?
    out=$(printf '%s\n' "$out" | tr -d '\r')
    if [ "$rc" -ne 0 ]; then
      detail=$(printf '%s\n' "$out" | sed -n 's/^curl: //p' | tail -n 1)
      echo "attempt $n $url error - ${detail:-curl exit status $rc}"
      continue
    fi
    code=$(printf '%s\n' "$out" | sed -n 's/^status //p' | tail -n 1)
    digest=$(printf '%s\n' "$out" | tr '[:upper:]' '[:lower:]' | sed -n 's/^docker-content-digest:[[:space:]]*//p' | tail -n 1)
    case $code:$digest in
      200:sha256:*) echo "attempt $n $url ok $digest"; break ;;
      200:*) echo "attempt $n $url http-200 - the answer names no Docker-Content-Digest" ;;
      *) echo "attempt $n $url http-${code:-none} -" ;;
    esac
  done
done

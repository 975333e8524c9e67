#!/usr/bin/env bash
# Tears down what node-up.sh started and restores the host: processes,
# pod sandboxes, iptables chains, bridges, sysctls, mounts and log links.
# Safe to run after a partial bring-up, and twice.
set -uo pipefail
: "${RUN:?set RUN to the run folder}" "${BIN:?}" "${KUBE_VERSION:?}"
[ -d "$RUN" ] || exit 0

pid() { cat "$RUN/pids/$1.pid" 2>/dev/null; }
# stop NAME [HALF_SECONDS]: SIGTERM, then SIGKILL when it lingers.
stop() {
  local p; p=$(pid "$1"); [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 1 "${2:-20}"); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.5; done
  kill -9 "$p" 2>/dev/null
}
CTR="ctr --address $RUN/containerd.sock -n k8s.io"

# Controllers first so nothing recreates pods; then every pod is deleted so
# the kubelet tears the sandboxes down (CNI, iptables, network namespaces).
stop scheduler; stop kcm
if [ -f "$RUN/kubeconfig" ] && [ -n "$(pid apiserver)" ]; then
  TOKEN=$(cut -d, -f1 "$RUN/pki/tokens.csv"); API=$(grep -o 'https://[^"]*' "$RUN/kubeconfig")
  K=(curl -s --max-time 10 --cacert "$RUN/pki/ca.crt" -H "Authorization: Bearer $TOKEN")
  for ns in $("${K[@]}" "$API/api/v1/namespaces" | python3 -c 'import json,sys; [print(i["metadata"]["name"]) for i in json.load(sys.stdin)["items"]]' 2>/dev/null); do
    "${K[@]}" -X DELETE "$API/api/v1/namespaces/$ns/pods?gracePeriodSeconds=0" >/dev/null
  done
  if [ -S "$RUN/containerd.sock" ] && [ -n "$(pid kubelet)" ]; then
    for _ in $(seq 1 120); do [ "$($CTR tasks ls -q 2>/dev/null | wc -l)" = 0 ] && break; sleep 0.5; done
  fi
fi
# Whatever the kubelet left: stop the tasks and remove their network namespaces.
if [ -S "$RUN/containerd.sock" ]; then
  for t in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
fi
stop kube-proxy; stop kubelet; stop apiserver 10; stop etcd; stop containerd

"$BIN/kube-proxy-$KUBE_VERSION" --cleanup >/dev/null 2>&1
# iptables: back to the rules saved before the run (kube-proxy, the kubelet
# and the CNI plugins write to whichever backends exist); a table that did
# not exist before is emptied.
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
  [ -f "$RUN/$ipt.orig" ] || continue
  "$ipt-restore" < "$RUN/$ipt.orig"
  for t in $("$ipt-save" | awk '/^\*/ {print substr($1, 2)}'); do
    grep -q "^\*$t\$" "$RUN/$ipt.orig" || { "$ipt" -t "$t" -F; "$ipt" -t "$t" -X; }
  done
done
if [ -f "$RUN/links" ]; then
  while read -r l; do ip link delete "$l" 2>/dev/null; done < "$RUN/links"
fi
if [ -f "$RUN/sysctl.orig" ]; then
  while read -r k _ v; do sysctl -qw "$k=$v"; done < "$RUN/sysctl.orig"
fi
mount | awk -v r="$RUN" 'index($3, r) == 1 {print $3}' | sort -r | xargs -r -n1 umount -l
for l in /var/log/containers/* /var/log/pods/*; do
  [ -L "$l" ] || continue
  case "$(readlink "$l")" in "$RUN"/*) rm -f "$l" ;; esac
done
if [ ! -f "$RUN/varlogcontainers.existed" ]; then rmdir /var/log/containers 2>/dev/null; fi
exit 0

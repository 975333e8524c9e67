#!/usr/bin/env bash
# verify-host.sh --record saves the host state make e2e may touch; without
# arguments it compares the host with that record and fails on a difference:
# network links, routes, iptables rules (every backend), the sysctls the
# kubelet and the CNI plugins set, mounts, /var/log/containers.
set -uo pipefail
: "${RUN:?}"
snapshot() {
  echo "## links"; ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
  echo "## routes"; ip route show | sort
  for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
    command -v "$ipt-save" >/dev/null || continue
    # An empty table whose chains accept everything is no table at all:
    # iptables-nft leaves such tables behind once it has touched them.
    echo "## $ipt"; "$ipt-save" 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' | awk '
      /^\*/ { buf = $0 "\n"; keep = 0; next }
      /^COMMIT/ { if (keep) printf "%s%s\n", buf, $0; next }
      { buf = buf $0 "\n"; if ($0 ~ /^-A/ || $0 ~ /^:[^ ]+ (DROP|-)/) keep = 1 }'
  done
  echo "## sysctls"; sysctl vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops net.ipv4.ip_forward net.ipv4.conf.all.route_localnet 2>/dev/null
  echo "## mounts"; awk '{print $2}' /proc/mounts | sort
  echo "## /var/log/containers"; ls -A /var/log/containers 2>/dev/null || echo absent
}
if [ "${1:-}" = --record ]; then snapshot > "$RUN/host.before"; exit 0; fi
[ -f "$RUN/host.before" ] || exit 0
if ! diff -u "$RUN/host.before" <(snapshot) > "$RUN/host.diff"; then
  echo "--- the host was not restored:" >&2; cat "$RUN/host.diff" >&2; exit 1
fi
echo "--- host restored (links, routes, iptables, sysctls, mounts)"

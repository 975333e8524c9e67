#!/usr/bin/env bash
# krew-manifest.sh VERSION URL DIST: writes DIST/targetlock.yaml, the krew
# plugin manifest of the kubectl-targetlock archives in DIST
# (kubectl-targetlock_VERSION_OS_ARCH.tar.gz), one platform per archive,
# each downloaded from URL/ARCHIVE and checked against its sha256.
set -euo pipefail
version=${1:?VERSION} url=${2:?URL} dist=${3:?DIST}
shopt -s nullglob
archives=("$dist"/kubectl-targetlock_"$version"_*.tar.gz)
if [ ${#archives[@]} = 0 ]; then echo "krew-manifest: no kubectl-targetlock_${version}_*.tar.gz in $dist" >&2; exit 1; fi
{
  cat <<YAML
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: targetlock
spec:
  version: v$version
  homepage: https://github.com/targetlock/targetlock
  shortDescription: Show targetlock's locks, denials and webhook certificates
  description: |
    kubectl targetlock reads what targetlock keeps in a cluster: the
    per-target Leases (locks), the WorkflowExecution CREATEs its admission
    webhook refused (denials), and whether the API server can trust and
    reach the webhook (certs verify).
  platforms:
YAML
  for a in "${archives[@]}"; do
    f=$(basename "$a")
    osarch=${f#kubectl-targetlock_"$version"_}
    osarch=${osarch%.tar.gz}
    cat <<YAML
  - selector:
      matchLabels:
        os: ${osarch%_*}
        arch: ${osarch#*_}
    uri: $url/$f
    sha256: $(sha256sum "$a" | cut -d' ' -f1)
    files:
    - from: kubectl-targetlock
      to: .
    - from: LICENSE
      to: .
    bin: kubectl-targetlock
YAML
  done
} > "$dist/targetlock.yaml"

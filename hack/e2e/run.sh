#!/usr/bin/env bash
# make e2e: the release of make release installed on a real single-node
# cluster (kubelet on containerd + runc): its image index loaded into
# containerd, its chart package pushed to an in-process OCI registry and
# installed from there with the helm CLI, its linux plugin archive put on
# PATH for kubectl; a storm with pod kills, admission timed through the
# webhook's Service, upgrade and uninstall. Needs
# root. Every host change
# (packages, bridges, iptables, sysctls, mounts) is undone on exit, also on
# failure; E2E_KEEP_PACKAGES=1 keeps the packages this script installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${BIN:?}" "${HELM:?}" "${KUBECTL:?}" "${RELEASE_DIR:?}" "${VERSION:?}" "${IMAGE_REPOSITORY:?}" "${IMAGE_DIGEST:?}" "${KUBE_VERSION:?}"
IMAGE_TAR=$RELEASE_DIR/targetlock-$VERSION.oci.tar
STARTED=$(date +%s)
if [ "$(id -u)" != 0 ]; then echo "make e2e needs root (a kubelet, containerd, iptables)" >&2; exit 1; fi

RUN=$(mktemp -d /tmp/targetlock-e2e.XXXXXX)
export RUN BIN KUBE_VERSION
ARTIFACTS=${E2E_ARTIFACTS:-$BIN/e2e-logs}
INSTALLED=()

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ] && [ -d "$RUN/logs" ]; then
    for f in "$RUN"/logs/*.log; do echo "--- tail of $f"; tail -n 15 "$f"; done >&2
    find "$RUN/podlogs" -name '*.log' 2>/dev/null | while read -r f; do echo "--- tail of $f"; tail -n 10 "$f"; done >&2
  fi
  rm -rf "$ARTIFACTS" && mkdir -p "$ARTIFACTS" && cp -r "$RUN/logs" "$ARTIFACTS/" 2>/dev/null
  [ -d "$RUN/podlogs" ] && cp -rL "$RUN/podlogs" "$ARTIFACTS/" 2>/dev/null
  hack/e2e/node-down.sh
  hack/e2e/verify-host.sh || rc=1
  if [ ${#INSTALLED[@]} -gt 0 ] && [ -z "${E2E_KEEP_PACKAGES:-}" ]; then
    echo "--- removing the packages it installed: ${INSTALLED[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${INSTALLED[@]}" >/dev/null || rc=1
  fi
  rm -rf "$RUN"
  echo "--- logs in $ARTIFACTS"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Packages: what is missing is installed, and only that is removed again.
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
command -v iptables >/dev/null || need+=(iptables)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
  dpkg-query -W -f '${Package}\n' | sort > "$RUN/packages.before"
  echo "--- installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  mapfile -t INSTALLED < <(dpkg-query -W -f '${Package}\n' | sort | comm -13 "$RUN/packages.before" -)
fi
hack/e2e/verify-host.sh --record

# The pod sandbox image: a static program that waits for SIGTERM.
# test/e2e is a Go module of its own (cert-manager's cainjector stays out of
# the binaries' module graph).
(cd test/e2e && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$RUN/pause" ./pause)
(cd hack/image && go run . --file "$RUN/pause:/pause" --entrypoint /pause --repository localhost/pause --tag 3.10 --out "$RUN/pause.tar" >/dev/null)
(cd test/e2e && go build -o "$RUN/e2e" .)
CERT_MANAGER_CRDS=$(cd test/e2e && go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)/deploy/crds

hack/e2e/node-up.sh "$RUN/pause.tar" "$IMAGE_TAR"
"$RUN/e2e" --kubeconfig "$RUN/kubeconfig" --helm "$HELM" --kubectl "$KUBECTL" \
  --plugin-archive "$RELEASE_DIR/kubectl-targetlock_${VERSION}_$(go env GOOS)_$(go env GOARCH).tar.gz" \
  --chart "$RELEASE_DIR/targetlock-$VERSION.tgz" --chart-version "$VERSION" \
  --image-repository "$IMAGE_REPOSITORY" --image-digest "$IMAGE_DIGEST" --cert-manager-crds "$CERT_MANAGER_CRDS" --started "$STARTED" \
  --webhook-client-ca "$RUN/pki/webhook-client-ca.crt" --webhook-client-cert "$RUN/pki/webhook-client.crt" --webhook-client-key "$RUN/pki/webhook-client.key" \
  ${E2E_FLAGS:-}

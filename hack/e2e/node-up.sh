#!/usr/bin/env bash
# Brings up a single-node cluster under $RUN: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd + runc, kubelet and
# kube-proxy (iptables). Needs root. Every address is on this machine: the
# node's address lives on a port-less bridge this script creates, pods on the
# CNI bridge; nothing binds to the machine's own network interface.
# Records what it changes on the host so node-down.sh can restore it.
set -euo pipefail
: "${RUN:?set RUN to the run folder}" "${BIN:?set BIN to the folder with the binaries}" "${KUBE_VERSION:?}"
NODE_IP=${NODE_IP:-10.250.0.1}
NODE_BRIDGE=${NODE_BRIDGE:-tle2e0}
CNI_BRIDGE=${CNI_BRIDGE:-tle2ecni0}
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
API_PORT=16443

T0=$(date +%s%N)
say() { local ms=$((($(date +%s%N) - T0) / 1000000)); printf -- '--- node %3d.%01ds %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"; }
# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local deadline=$(($(date +%s) + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "--- node: timed out waiting for $what" >&2; return 1; fi
    sleep 0.3
  done
}

mkdir -p "$RUN"/{pki,pids,logs,cni,containerd,kubelet,podlogs,etcd,ipam}

# Host state to restore: sysctls the kubelet and the CNI plugins set, and
# whether /var/log/containers existed.
sysctl -a 2>/dev/null | grep -E '^(vm.overcommit_memory|vm.panic_on_oom|kernel.panic|kernel.panic_on_oops|net.ipv4.ip_forward|net.ipv4.conf.all.route_localnet) ' > "$RUN/sysctl.orig"
[ -d /var/log/containers ] && touch "$RUN/varlogcontainers.existed"
for ipt in iptables ip6tables iptables-legacy ip6tables-legacy; do
  if command -v "$ipt-save" >/dev/null; then "$ipt-save" > "$RUN/$ipt.orig"; fi
done

ip link add "$NODE_BRIDGE" type bridge
echo "$NODE_BRIDGE" >> "$RUN/links"
ip addr add "$NODE_IP/32" dev "$NODE_BRIDGE"
ip link set "$NODE_BRIDGE" up

P=$RUN/pki
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/ca.key" -out "$P/ca.crt" -days 2 -subj /CN=targetlock-e2e-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$P/apiserver.key" -out "$P/apiserver.csr" -subj /CN=kube-apiserver 2>/dev/null
printf "subjectAltName=IP:127.0.0.1,IP:%s,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n" "$NODE_IP" > "$P/ext.cnf"
openssl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -out "$P/apiserver.crt" -days 2 -extfile "$P/ext.cnf" 2>/dev/null
openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
# The client certificate the API server presents to admission webhooks
# (mutual TLS, docs/operations.md), from a CA of its own that the webhook
# trusts (webhook.clientAuth): an AdmissionConfiguration whose kubeconfig
# names it for every webhook (user "*"), for both webhook plugins.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/webhook-client-ca.key" -out "$P/webhook-client-ca.crt" -days 2 -subj /CN=targetlock-e2e-webhook-client-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$P/webhook-client.key" -out "$P/webhook-client.csr" -subj /CN=kube-apiserver 2>/dev/null
printf "extendedKeyUsage=clientAuth\n" > "$P/client-ext.cnf"
openssl x509 -req -in "$P/webhook-client.csr" -CA "$P/webhook-client-ca.crt" -CAkey "$P/webhook-client-ca.key" -CAcreateserial -out "$P/webhook-client.crt" -days 2 -extfile "$P/client-ext.cnf" 2>/dev/null
cat > "$P/webhook-client.kubeconfig" <<EOF
apiVersion: v1
kind: Config
users: [{name: "*", user: {client-certificate: $P/webhook-client.crt, client-key: $P/webhook-client.key}}]
EOF
cat > "$P/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: ValidatingAdmissionWebhook
    configuration: {apiVersion: apiserver.config.k8s.io/v1, kind: WebhookAdmissionConfiguration, kubeConfigFile: $P/webhook-client.kubeconfig}
  - name: MutatingAdmissionWebhook
    configuration: {apiVersion: apiserver.config.k8s.io/v1, kind: WebhookAdmissionConfiguration, kubeConfigFile: $P/webhook-client.kubeconfig}
EOF
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$TOKEN,admin,admin,system:masters" > "$P/tokens.csv"
chmod 600 "$P"/*.key "$P/tokens.csv"

cat > "$RUN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority: $P/ca.crt}}]
users: [{name: admin, user: {token: $TOKEN}}]
contexts: [{name: e2e, context: {cluster: e2e, user: admin}}]
current-context: e2e
EOF
chmod 600 "$RUN/kubeconfig"

# restrict_oom_score_adj: this machine lacks CAP_SYS_RESOURCE, without it
# runc cannot create the first sandbox. runc, not crun: crun fails on a
# hybrid cgroup hierarchy.
cat > "$RUN/containerd.toml" <<EOF
version = 2
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
[grpc]
  address = "$RUN/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:3.10"
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
EOF
cat > "$RUN/cni/10-e2e.conflist" <<EOF
{"cniVersion":"1.0.0","name":"targetlock-e2e","plugins":[
 {"type":"bridge","bridge":"$CNI_BRIDGE","isGateway":true,"ipMasq":true,"hairpinMode":true,
  "ipam":{"type":"host-local","dataDir":"$RUN/ipam","ranges":[[{"subnet":"$POD_CIDR"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
EOF
echo "$CNI_BRIDGE" >> "$RUN/links"
# failCgroupV1/cgroupfs: this machine's cgroups are v1.
cat > "$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$RUN/containerd.sock
address: $NODE_IP
port: 20250
healthzBindAddress: 127.0.0.1
healthzPort: 20248
readOnlyPort: 0
podLogsDir: $RUN/podlogs
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
EOF
# localhostNodePorts off and conntrack untouched: kube-proxy changes no sysctls.
cat > "$RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $RUN/kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: e2e-node
metricsBindAddress: 127.0.0.1:20249
healthzBindAddress: 127.0.0.1:20256
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF

start() { local n=$1; shift; nohup "$@" > "$RUN/logs/$n.log" 2>&1 & echo $! > "$RUN/pids/$n.pid"; }
CTR="ctr --address $RUN/containerd.sock -n k8s.io"

start containerd containerd --config "$RUN/containerd.toml"
start etcd "$BIN/etcd" --data-dir "$RUN/etcd" --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
  --initial-cluster default=http://127.0.0.1:23800 --listen-metrics-urls http://127.0.0.1:23810
wait_for 30 containerd test -S "$RUN/containerd.sock"
for img in "$@"; do
  # --digests names the image repository@digest too, so a pod can pin it.
  $CTR images import --digests --base-name "$(tar xOf "$img" index.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["annotations"]["io.containerd.image.name"].rsplit(":",1)[0])')" "$img" >/dev/null
done
say "containerd up, $# images imported"
wait_for 60 etcd curl -sf http://127.0.0.1:23790/health
say "etcd up"

# No --enable-aggregator-routing: the API server calls webhooks at their
# Service's ClusterIP, through kube-proxy's rules, as in a default cluster.
start apiserver "$BIN/kube-apiserver-$KUBE_VERSION" --etcd-servers=http://127.0.0.1:23790 --secure-port=$API_PORT --bind-address="$NODE_IP" --advertise-address="$NODE_IP" \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
  --authorization-mode=Node,RBAC --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$P/sa.pub" \
  --service-account-signing-key-file="$P/sa.key" --service-cluster-ip-range=$SERVICE_CIDR \
  --kubelet-preferred-address-types=InternalIP,Hostname --cert-dir="$RUN/apiserver-certs" --admission-control-config-file="$P/admission.yaml"
KCTL=(curl -sf --cacert "$P/ca.crt" -H "Authorization: Bearer $TOKEN")
API=https://$NODE_IP:$API_PORT
wait_for 120 kube-apiserver "${KCTL[@]}" "$API/readyz"
say "kube-apiserver ready"

KC=(--kubeconfig="$RUN/kubeconfig" --authentication-kubeconfig="$RUN/kubeconfig" --authorization-kubeconfig="$RUN/kubeconfig" --leader-elect=false --bind-address=127.0.0.1)
start kcm "$BIN/kube-controller-manager-$KUBE_VERSION" "${KC[@]}" --secure-port=20257 --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --service-cluster-ip-range=$SERVICE_CIDR --use-service-account-credentials
start scheduler "$BIN/kube-scheduler-$KUBE_VERSION" "${KC[@]}" --secure-port=20259
start kubelet "$BIN/kubelet-$KUBE_VERSION" --config="$RUN/kubelet.yaml" --kubeconfig="$RUN/kubeconfig" --root-dir="$RUN/kubelet" \
  --cert-dir="$RUN/kubelet/pki" --hostname-override=e2e-node --node-ip="$NODE_IP"
start kube-proxy "$BIN/kube-proxy-$KUBE_VERSION" --config="$RUN/kube-proxy.yaml"

node_ready() {
  "${KCTL[@]}" "$API/api/v1/nodes/e2e-node" | python3 -c 'import json,sys
n = json.load(sys.stdin)
ready = any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
sys.exit(0 if ready and not n["spec"].get("taints") else 1)'
}
wait_for 180 "the node to be Ready" node_ready
say "node Ready"
wait_for 60 "the default ServiceAccount" "${KCTL[@]}" "$API/api/v1/namespaces/default/serviceaccounts/default"
say "cluster up: KUBECONFIG=$RUN/kubeconfig"

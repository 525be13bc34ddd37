# shellcheck shell=bash
# Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler of one pinned release, built from the Go module proxy (hack/lib/k8s-build.sh) and
# cached in /var/cache/stackube. Certificates and kubeconfigs are generated once, locally.

K8S_DIR=$TESTENV_ROOT/k8s
K8S_PKI=$K8S_DIR/pki
K8S_APISERVER=https://127.0.0.1:6443
K8S_SERVICE_CIDR=10.96.0.0/12
K8S_BIN=""
# Where kube-apiserver sends TokenReviews: stackube-auth, started by hack/devbox (or by the tests)
# with the certificates of k8s_pki_auth.
STACKUBE_AUTH_LISTEN=127.0.0.1:8443

phase_k8s_build() {
  phase "kubernetes binaries (Go module proxy, cached)"
  local log=$TESTENV_LOGS/k8s-build.log
  mkdir -p "$TESTENV_LOGS"
  # gVisor builds beside Kubernetes (about 3 minutes the first time); phase_node waits for it.
  "$HACK_DIR/lib/gvisor-build.sh" >/dev/null 2>"$TESTENV_LOGS/gvisor-build.log" &
  GVISOR_BUILD_PID=$!
  if ! K8S_BIN=$("$HACK_DIR/lib/k8s-build.sh" 2>"$log"); then
    log "testenv: building Kubernetes failed"
    explain_failure "$log"
    exit 1
  fi
  phase_done "$("$K8S_BIN/kube-apiserver" --version 2>/dev/null)"
}

# cert NAME CN [O] [SANS]: a key and a certificate signed by the test CA.
k8s_cert() {
  local name=$1 cn=$2 org=${3:-} sans=${4:-}
  local subj="/CN=$cn"
  [ -n "$org" ] && subj="/O=$org$subj"
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl genrsa -out "$K8S_PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$K8S_PKI/$name.key" -subj "$subj" -out "$K8S_PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$K8S_PKI/$name.csr" -CA "$K8S_PKI/ca.crt" -CAkey "$K8S_PKI/ca.key" \
    -CAcreateserial -days 3650 -extfile "$ext" -out "$K8S_PKI/$name.crt" 2>/dev/null
  rm -f "$ext" "$K8S_PKI/$name.csr"
}

# kubeconfig NAME CERT: a kubeconfig with embedded client certificate CERT.
k8s_kubeconfig() {
  local file=$K8S_DIR/$1.kubeconfig cert=$2
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: stackube-testenv
  cluster:
    server: $K8S_APISERVER
    certificate-authority-data: $(base64 -w0 <"$K8S_PKI/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 <"$K8S_PKI/$cert.crt")
    client-key-data: $(base64 -w0 <"$K8S_PKI/$cert.key")
contexts:
- name: $1@stackube-testenv
  context:
    cluster: stackube-testenv
    user: $1
current-context: $1@stackube-testenv
EOF
  chmod 600 "$file"
}

k8s_pki() {
  marker k8s-pki && return 0
  rm -rf "$K8S_PKI"
  mkdir -p "$K8S_PKI"
  chmod 700 "$K8S_PKI"
  openssl genrsa -out "$K8S_PKI/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$K8S_PKI/ca.key" -subj "/CN=stackube-testenv-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$K8S_PKI/ca.crt" 2>/dev/null
  k8s_cert admin kubernetes-admin system:masters
  k8s_cert controller-manager system:kube-controller-manager
  k8s_cert scheduler system:kube-scheduler
  openssl genrsa -out "$K8S_PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$K8S_PKI/sa.key" -pubout -out "$K8S_PKI/sa.pub" 2>/dev/null
  k8s_kubeconfig admin admin
  k8s_kubeconfig controller-manager controller-manager
  k8s_kubeconfig scheduler scheduler
  mark k8s-pki
}

# kube-apiserver's serving certificate: for loopback, the host's address on the external network
# (the `kubernetes` Service's endpoint) and the Service's names. Remade when an environment made
# before the advertised address has a certificate without it.
K8S_APISERVER_SANS="IP:127.0.0.1,IP:$HOST_EXT_ADDR,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
k8s_pki_apiserver() {
  [ "$(cat "$K8S_PKI/apiserver.sans" 2>/dev/null)" = "$K8S_APISERVER_SANS" ] && return 0
  k8s_cert apiserver kube-apiserver "" "$K8S_APISERVER_SANS"
  echo "$K8S_APISERVER_SANS" >"$K8S_PKI/apiserver.sans"
}

# kube-apiserver's client certificate for the kubelets (logs, exec, port-forward), in a group
# that may use every kubelet API. A separate marker, for environments made before the node.
k8s_pki_kubelet_client() {
  marker k8s-pki-kubelet-client && return 0
  k8s_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  mark k8s-pki-kubelet-client
}

# The webhook's serving certificate, kube-apiserver's client certificate for it, and the
# kubeconfig-format file that tells kube-apiserver where the webhook is. A separate marker, so
# that an environment made before the webhook existed gets them too.
k8s_pki_auth() {
  marker k8s-pki-auth && return 0
  k8s_cert auth-webhook stackube-auth "" \
    "IP:127.0.0.1,DNS:localhost,DNS:stackube-auth.kube-system.svc,DNS:stackube-auth.kube-system.svc.cluster.local"
  k8s_cert apiserver-webhook-client kube-apiserver-webhook-client
  cat >"$K8S_DIR/auth-webhook.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: stackube-auth
  cluster:
    server: https://$STACKUBE_AUTH_LISTEN/tokenreview
    certificate-authority: $K8S_PKI/ca.crt
users:
- name: kube-apiserver
  user:
    client-certificate: $K8S_PKI/apiserver-webhook-client.crt
    client-key: $K8S_PKI/apiserver-webhook-client.key
contexts:
- name: webhook
  context:
    cluster: stackube-auth
    user: kube-apiserver
current-context: webhook
EOF
  chmod 600 "$K8S_DIR/auth-webhook.kubeconfig"
  mark k8s-pki-auth
}

k8s_ready() {
  curl -sf --cacert "$K8S_PKI/ca.crt" --cert "$K8S_PKI/admin.crt" --key "$K8S_PKI/admin.key" \
    "$K8S_APISERVER/readyz" | grep -qx ok
}

phase_kubernetes() {
  phase "kubernetes control plane"
  mkdir -p "$K8S_DIR"
  k8s_pki
  k8s_pki_auth
  k8s_pki_kubelet_client
  k8s_pki_apiserver
  svc_ensure etcd -- "$K8S_BIN/etcd" --name stackube-testenv --data-dir "$K8S_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster stackube-testenv=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --quota-backend-bytes 2147483648 || true
  wait_until 60 "etcd health" "$TESTENV_LOGS/etcd.log" -- curl -sf http://127.0.0.1:2381/health
  svc_ensure kube-apiserver --watch "$K8S_PKI/apiserver.crt" -- "$K8S_BIN/kube-apiserver" \
    --bind-address 0.0.0.0 --advertise-address "$HOST_EXT_ADDR" --secure-port 6443 \
    --etcd-servers http://127.0.0.1:2379 \
    --client-ca-file "$K8S_PKI/ca.crt" \
    --tls-cert-file "$K8S_PKI/apiserver.crt" --tls-private-key-file "$K8S_PKI/apiserver.key" \
    --service-account-key-file "$K8S_PKI/sa.pub" --service-account-signing-key-file "$K8S_PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$K8S_SERVICE_CIDR" \
    --authorization-mode Node,RBAC \
    --kubelet-client-certificate "$K8S_PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$K8S_PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$K8S_PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --authentication-token-webhook-config-file "$K8S_DIR/auth-webhook.kubeconfig" \
    --authentication-token-webhook-version v1 \
    --authentication-token-webhook-cache-ttl 10s \
    --feature-gates MutatingAdmissionPolicy=true \
    --runtime-config admissionregistration.k8s.io/v1beta1=true \
    --allow-privileged=true || true
  # (MutatingAdmissionPolicy, beta in 1.34 and off by default: deploy/admission.yaml gives a
  # tenant's pods its RuntimeClass with one.)
  # (--authentication-token-webhook-*: bearer tokens that are neither ServiceAccount nor bootstrap
  # tokens go to stackube-auth, which caches reviews itself; kube-apiserver's own cache is kept
  # short so that a revoked token is noticed soon after stackube-auth's cache lets go of it.)
  # (--bind-address 0.0.0.0, --advertise-address: the `kubernetes` Service's endpoint is the
  # host's address on the external network, which tenant routers reach through their gateway;
  # kube-apiserver refuses loopback endpoints. Tenant networks reach no other port of the host:
  # host_filter in hack/lib/openstack.sh.)
  wait_until 120 "kube-apiserver /readyz" "$TESTENV_LOGS/kube-apiserver.log" -- k8s_ready
  svc_ensure kube-controller-manager -- "$K8S_BIN/kube-controller-manager" \
    --bind-address 127.0.0.1 --secure-port 10257 \
    --kubeconfig "$K8S_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$K8S_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$K8S_DIR/controller-manager.kubeconfig" \
    --service-account-private-key-file "$K8S_PKI/sa.key" --root-ca-file "$K8S_PKI/ca.crt" \
    --cluster-signing-cert-file "$K8S_PKI/ca.crt" --cluster-signing-key-file "$K8S_PKI/ca.key" \
    --use-service-account-credentials --service-cluster-ip-range "$K8S_SERVICE_CIDR" \
    --leader-elect=false || true
  svc_ensure kube-scheduler -- "$K8S_BIN/kube-scheduler" \
    --bind-address 127.0.0.1 --secure-port 10259 \
    --kubeconfig "$K8S_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$K8S_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$K8S_DIR/scheduler.kubeconfig" \
    --leader-elect=false || true
  wait_until 60 "kube-controller-manager /healthz" "$TESTENV_LOGS/kube-controller-manager.log" -- \
    curl -skf https://127.0.0.1:10257/healthz
  wait_until 60 "kube-scheduler /healthz" "$TESTENV_LOGS/kube-scheduler.log" -- \
    curl -skf https://127.0.0.1:10259/healthz
  phase_done
}

KUBERNETES_SERVICES=(kube-scheduler kube-controller-manager kube-apiserver etcd)

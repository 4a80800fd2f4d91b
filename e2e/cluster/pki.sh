# shellcheck shell=bash
# Local certificate authority and the certificates of every component (ECDSA
# P-256, openssl). Sourced by up.sh; writes into $1.
make_pki() {
  local d=$1
  mkdir -p "$d"; chmod 700 "$d"
  local days=30
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$d/ca.key" -out "$d/ca.crt" -days "$days" -subj "/CN=imprint-e2e-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null

  # cert NAME SUBJECT USAGE [SAN] [KEY]   USAGE: server, client or both;
  # KEY: ec (default) or rsa
  cert() {
    local name=$1 subj=$2 usage=$3 san=${4:-} key=${5:-ec} eku ext keyopts
    case $usage in
      server) eku=serverAuth ;; client) eku=clientAuth ;; both) eku=serverAuth,clientAuth ;;
    esac
    ext=$(mktemp)
    {
      echo "basicConstraints=critical,CA:FALSE"
      echo "keyUsage=critical,digitalSignature,keyEncipherment"
      echo "extendedKeyUsage=$eku"
      [[ -n $san ]] && echo "subjectAltName=$san"
    } > "$ext"
    case $key in
      ec) keyopts=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
      rsa) keyopts=(-newkey rsa:2048) ;;
    esac
    openssl req -new -nodes "${keyopts[@]}" \
      -keyout "$d/$name.key" -out "$d/$name.csr" -subj "$subj" 2>/dev/null
    openssl x509 -req -in "$d/$name.csr" -CA "$d/${cert_ca:-ca}.crt" -CAkey "$d/${cert_ca:-ca}.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days "$days" -extfile "$ext" -out "$d/$name.crt" 2>/dev/null
    rm -f "$ext" "$d/$name.csr"
  }
  cert etcd "/CN=etcd" both "IP:127.0.0.1,DNS:localhost"
  cert apiserver-etcd-client "/CN=kube-apiserver-etcd-client" client
  cert apiserver "/CN=kube-apiserver" server \
    "IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:$NODE_NAME,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" client
  cert admin "/O=system:masters/CN=imprint-e2e-admin" client
  cert controller-manager "/CN=system:kube-controller-manager" client
  cert scheduler "/CN=system:kube-scheduler" client
  cert kube-proxy "/CN=system:kube-proxy" client
  cert kube-router "/CN=system:kube-router" client
  cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" client
  cert kubelet-server "/CN=$NODE_NAME" server "IP:$NODE_IP,DNS:$NODE_NAME"
  cert kubelet2-client "/O=system:nodes/CN=system:node:$NODE2_NAME" client
  cert kubelet2-server "/CN=$NODE2_NAME" server "IP:$NODE2_IP,DNS:$NODE2_NAME"
  # Aggregation layer: its own CA and the API server's proxy client certificate.
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$d/front-proxy-ca.key" -out "$d/front-proxy-ca.crt" -days "$days" -subj "/CN=imprint-e2e-front-proxy-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  cert_ca=front-proxy-ca cert front-proxy-client "/CN=front-proxy-client" client
  # ServiceAccount token signing key pair.
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/sa.key" 2>/dev/null
  openssl ec -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  chmod 600 "$d"/*.key
}

# make_kubeconfig FILE CERT_NAME USER
make_kubeconfig() {
  local f=$1 c=$2 user=$3 k=$K8S_BIN/kubectl
  "$k" --kubeconfig "$f" config set-cluster imprint-e2e --server "$API_SERVER" \
    --certificate-authority "$STATE/pki/ca.crt" --embed-certs >/dev/null
  "$k" --kubeconfig "$f" config set-credentials "$user" --client-certificate "$STATE/pki/$c.crt" \
    --client-key "$STATE/pki/$c.key" --embed-certs >/dev/null
  "$k" --kubeconfig "$f" config set-context imprint-e2e --cluster imprint-e2e --user "$user" >/dev/null
  "$k" --kubeconfig "$f" config use-context imprint-e2e >/dev/null
  chmod 600 "$f"
}

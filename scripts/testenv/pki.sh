#!/usr/bin/env bash
# pki.sh DIR: create the test cluster's CA, serving/client certificates and
# service-account keys in DIR (openssl, EC P-256 keys, PKCS#8 PEM).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
D=${1:?usage: pki.sh DIR}
mkdir -p "$D"; cd "$D"
umask 077
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 3650 -subj "/CN=kubegost-testenv-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
sign() { # name subject extensions
  openssl req "${ec[@]}" -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
    -out "$1.crt" -extfile <(printf "%b" "$3") 2>/dev/null
  rm -f "$1.csr"
}
san="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1,IP:10.244.0.1"
sign apiserver "/CN=kube-apiserver" "subjectAltName=$san\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature"
sign admin "/O=system:masters/CN=kubegost-admin" "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE"
sign kcm "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE"
sign scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE"
sign kubelet "/O=system:nodes/CN=system:node:kgnode" "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE"
sign kubelet-serving "/CN=kgnode" "subjectAltName=DNS:kgnode,IP:10.244.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE"
sign kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE"
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 644 ./*.crt sa.pub

#!/usr/bin/env bash
# Makes the certificates of a deployment: one certificate authority, and a
# certificate and key for each PD and TiKV member (server and client: they
# talk to each other) and for the Posbon services (client), all signed by it.
# PD, TiKV and Posbon then speak mutual TLS only (deploy/compose.yaml).
#
#   deploy/make-certs.sh deploy/secrets/tls
#
# Keys are written with mode 0600 in a directory of mode 0700. Keep ca-key.pem
# offline once the certificates are made: it signs new members.
set -euo pipefail
out="${1:?usage: make-certs.sh DIR}"
days="${DAYS:-825}"
if [[ -e "$out/ca.pem" ]]; then
    echo "make-certs: $out/ca.pem exists; choose another directory" >&2
    exit 1
fi
install -d -m 700 "$out"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$out/ca-key.pem" -out "$out/ca.pem" -days "$days" \
    -subj "/CN=posbon-cluster-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
issue() { # name, subjectAltName
    local name="$1" san="$2"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$out/$name-key.pem" -out "$out/$name.csr" -subj "/CN=$name" 2>/dev/null
    openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" \
        -CAcreateserial -out "$out/$name.pem" -days "$days" \
        -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n' "$san") \
        2>/dev/null
    rm -f "$out/$name.csr"
}
for member in pd0 pd1 pd2 tikv0 tikv1 tikv2; do
    issue "$member" "DNS:$member,DNS:localhost,IP:127.0.0.1"
done
issue posbon "DNS:posbon"
rm -f "$out/ca.srl"
# The containers run as other users than the one running this script: the
# certificates and keys must be readable by them; the directory (0700) keeps
# everybody else on the host out.
chmod 0644 "$out"/*.pem
chmod 0600 "$out/ca-key.pem"
echo "make-certs: CA and certificates for pd0-2, tikv0-2 and posbon in $out" >&2

# RS256 tokens for the benchmarks, with openssl only (RFC 7515, RFC 7517,
# RFC 7519): jwt_init DIR writes a key and DIR/jwks.json; jwt_mint SUB AUD
# prints a token signed by it. The gateway reads the JWKS from a static file
# served by the benchmark's upstream nginx.

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

jwt_init() { # jwt_init DIR
  JWT_DIR=$1
  mkdir -p "$JWT_DIR"
  openssl genrsa -out "$JWT_DIR/key.pem" 2048 2>/dev/null
  local hex n
  hex=$(openssl rsa -in "$JWT_DIR/key.pem" -noout -modulus | cut -d= -f2)
  # hex -> bytes -> base64url, without xxd or python
  n=$(printf '%b' "$(echo "$hex" | sed 's/../\\x&/g')" | b64url)
  printf '{"keys":[{"kty":"RSA","kid":"bench","use":"sig","alg":"RS256","n":"%s","e":"AQAB"}]}' "$n" \
    >"$JWT_DIR/jwks.json"
  # nginx's workers (another user when started as root) serve the JWKS.
  chmod 755 "$(dirname "$JWT_DIR")" "$JWT_DIR"
  chmod 644 "$JWT_DIR/jwks.json"
}

jwt_mint() { # jwt_mint ISSUER SUB AUD
  local now header payload sig
  now=$(date +%s)
  header=$(printf '{"alg":"RS256","typ":"JWT","kid":"bench"}' | b64url)
  payload=$(printf '{"iss":"%s","sub":"%s","aud":"%s","scope":"openid","client_id":"bench","iat":%d,"exp":%d,"jti":"%s"}' \
    "$1" "$2" "$3" "$now" "$((now + 86400))" "$RANDOM$RANDOM$RANDOM" | b64url)
  sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$JWT_DIR/key.pem" | b64url)
  printf '%s.%s.%s' "$header" "$payload" "$sig"
}

#!/usr/bin/env bash
# Self-test of the local OIDC provider: full authorization-code + PKCE flow
# with curl and a cookie jar, exactly as README.md describes it.
# Exits non-zero with a message on the first failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

fail() {
  if [ -n "${TMP:-}" ] && [ -s "$TMP/stderr" ]; then
    echo "check.sh: provider stderr:" >&2
    sed 's/^/  | /' "$TMP/stderr" >&2
  fi
  echo "check.sh: FAIL: $*" >&2
  exit 1
}
step() { echo "check.sh: $*" >&2; }

command -v node >/dev/null || fail "node not found"
command -v curl >/dev/null || fail "curl not found"

if [ ! -d node_modules/oidc-provider ]; then
  step "installing (npm ci)"
  npm ci --no-audit --no-fund >&2 || fail "npm ci failed"
fi

TMP="$(mktemp -d)"
PID=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

export OIDC_PORT=0
export OIDC_CLIENT_ID=autoglue-test
export OIDC_CLIENT_SECRET=autoglue-test-secret
export OIDC_REDIRECT_URI=http://127.0.0.1:9/oidc/callback

node provider.mjs >"$TMP/stdout" 2>"$TMP/stderr" &
PID=$!

ISSUER=""
for _ in $(seq 1 100); do
  if grep -q '^READY ' "$TMP/stdout" 2>/dev/null; then
    ISSUER="$(sed -n 's/^READY //p' "$TMP/stdout" | head -n1)"
    break
  fi
  kill -0 "$PID" 2>/dev/null || fail "provider exited before READY"
  sleep 0.1
done
[ -n "$ISSUER" ] || fail "no READY line within 10s"
[ "$(wc -l <"$TMP/stdout")" -eq 1 ] || fail "stdout must hold exactly one line, got: $(cat "$TMP/stdout")"
step "provider ready at $ISSUER"

JAR="$TMP/cookies"
# -s silent, -S show errors, no redirect following (we check every hop).
C=(curl -sS --max-time 10 -b "$JAR" -c "$JAR")

# headers <file> <name>: value of a response header (case-insensitive).
header() { tr -d '\r' <"$1" | awk -v n="$(echo "$2" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1)==n {sub(/^[^:]*: /,""); print; exit}'; }
status() { tr -d '\r' <"$1" | awk 'NR==1 {print $2}'; }

# jq-free JSON field read with node.
json() { node -e 'const o=JSON.parse(require("fs").readFileSync(0,"utf8")); const v=o[process.argv[1]]; if (v===undefined) process.exit(3); process.stdout.write(typeof v==="string"?v:JSON.stringify(v));' "$1"; }

# --- 0. discovery ----------------------------------------------------------
"${C[@]}" "$ISSUER/.well-known/openid-configuration" >"$TMP/disc.json" || fail "discovery request failed"
[ "$(json issuer <"$TMP/disc.json")" = "$ISSUER" ] || fail "discovery issuer mismatch"
AUTH_EP="$(json authorization_endpoint <"$TMP/disc.json")"
TOKEN_EP="$(json token_endpoint <"$TMP/disc.json")"
JWKS_URI="$(json jwks_uri <"$TMP/disc.json")"
"${C[@]}" "$JWKS_URI" >"$TMP/jwks.json" || fail "jwks request failed"
node -e 'const j=JSON.parse(require("fs").readFileSync(0,"utf8")); if(!j.keys.some(k=>k.kty==="RSA"&&k.alg==="RS256"&&!k.d)) process.exit(1)' <"$TMP/jwks.json" \
  || fail "jwks has no public RS256 RSA key"
step "discovery ok: auth=$AUTH_EP token=$TOKEN_EP jwks=$JWKS_URI"

# --- PKCE + request values ---------------------------------------------------
VERIFIER="$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')"
CHALLENGE="$(node -e 'process.stdout.write(require("crypto").createHash("sha256").update(process.argv[1]).digest("base64url"))' "$VERIFIER")"
STATE="st-$RANDOM$RANDOM"
NONCE="n-$RANDOM$RANDOM"
LOGIN="alice-$RANDOM"
enc() { node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$1"; }

AUTH_URL="$AUTH_EP?response_type=code&client_id=$(enc "$OIDC_CLIENT_ID")&redirect_uri=$(enc "$OIDC_REDIRECT_URI")&scope=$(enc 'openid email profile')&state=$STATE&nonce=$NONCE&code_challenge=$CHALLENGE&code_challenge_method=S256"

# --- 1. GET authorize -> 303 /interaction/<uid> -----------------------------
"${C[@]}" -D "$TMP/h1" -o /dev/null "$AUTH_URL" || fail "authorize request failed"
[ "$(status "$TMP/h1")" = 303 ] || fail "authorize: expected 303, got $(status "$TMP/h1")"
LOC1="$(header "$TMP/h1" location)"
case "$LOC1" in "$ISSUER/interaction/"*) ;; *) fail "authorize: unexpected Location '$LOC1'";; esac
UID_="${LOC1#"$ISSUER"/interaction/}"
grep -q "_interaction" "$JAR" || fail "authorize: no _interaction cookie set"
step "1. authorize -> 303 $LOC1"

# --- 2. GET interaction page -> 200 login form ------------------------------
"${C[@]}" -D "$TMP/h2" -o "$TMP/page.html" "$LOC1" || fail "interaction page request failed"
[ "$(status "$TMP/h2")" = 200 ] || fail "interaction page: expected 200, got $(status "$TMP/h2")"
grep -q "action=\"/interaction/$UID_/login\"" "$TMP/page.html" || fail "interaction page: login form action not found"
grep -q 'name="login"' "$TMP/page.html" && grep -q 'name="password"' "$TMP/page.html" || fail "interaction page: fields missing"
step "2. interaction page -> 200 (form action /interaction/$UID_/login)"

# --- 2b. wrong password -> 401, interaction still usable ---------------------
"${C[@]}" -D "$TMP/h2b" -o /dev/null --data-urlencode "login=$LOGIN" --data-urlencode "password=wrong" \
  "$ISSUER/interaction/$UID_/login" || fail "bad-password POST failed"
[ "$(status "$TMP/h2b")" = 401 ] || fail "wrong password: expected 401, got $(status "$TMP/h2b")"
step "2b. wrong password -> 401"

# --- 3. POST login -> 303 <issuer>/auth/<uid> -------------------------------
"${C[@]}" -D "$TMP/h3" -o /dev/null --data-urlencode "login=$LOGIN" --data-urlencode "password=secret" \
  "$ISSUER/interaction/$UID_/login" || fail "login POST failed"
[ "$(status "$TMP/h3")" = 303 ] || fail "login: expected 303, got $(status "$TMP/h3")"
LOC3="$(header "$TMP/h3" location)"
[ "$LOC3" = "$ISSUER/auth/$UID_" ] || fail "login: unexpected Location '$LOC3'"
step "3. login POST -> 303 $LOC3"

# --- 4. GET resume -> 303 redirect_uri?code=...&state=...&iss=... -------------
"${C[@]}" -D "$TMP/h4" -o /dev/null "$LOC3" || fail "resume request failed"
[ "$(status "$TMP/h4")" = 303 ] || fail "resume: expected 303, got $(status "$TMP/h4")"
LOC4="$(header "$TMP/h4" location)"
case "$LOC4" in "$OIDC_REDIRECT_URI?"*) ;; *) fail "resume: Location is not the redirect_uri: '$LOC4'";; esac
QS="${LOC4#*\?}"
param() { node -e 'process.stdout.write(new URLSearchParams(process.argv[1]).get(process.argv[2]) ?? "")' "$QS" "$1"; }
CODE="$(param code)"
[ -n "$CODE" ] || fail "resume: no code in '$LOC4'"
[ "$(param state)" = "$STATE" ] || fail "resume: state mismatch in '$LOC4'"
[ "$(param iss)" = "$ISSUER" ] || fail "resume: iss mismatch in '$LOC4'"
step "4. resume -> 303 $OIDC_REDIRECT_URI?code=…&state=…&iss=…"

# --- 5. POST token (client_secret_basic) -------------------------------------
curl -sS --max-time 10 -o "$TMP/token.json" -w '%{http_code}' \
  -u "$OIDC_CLIENT_ID:$OIDC_CLIENT_SECRET" \
  --data-urlencode grant_type=authorization_code \
  --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$OIDC_REDIRECT_URI" \
  --data-urlencode "code_verifier=$VERIFIER" \
  "$TOKEN_EP" >"$TMP/token.status" || fail "token request failed"
[ "$(cat "$TMP/token.status")" = 200 ] || fail "token: expected 200, got $(cat "$TMP/token.status"): $(cat "$TMP/token.json")"
ID_TOKEN="$(json id_token <"$TMP/token.json")" || fail "token: no id_token in $(cat "$TMP/token.json")"
[ "$(json token_type <"$TMP/token.json")" = Bearer ] || fail "token: token_type is not Bearer"
ACCESS_TOKEN="$(json access_token <"$TMP/token.json")" || fail "token: no access_token"
step "5. token (client_secret_basic) -> 200"

# --- 6. verify id_token (signature against jwks_uri, claims) ----------------
EXPECT_SUB="$(node -e 'process.stdout.write(require("crypto").createHash("sha256").update("autoglue-test-oidc:"+process.argv[1]).digest("hex").slice(0,32))' "$LOGIN")"
ID_TOKEN="$ID_TOKEN" JWKS="$(cat "$TMP/jwks.json")" ISSUER="$ISSUER" NONCE="$NONCE" LOGIN="$LOGIN" EXPECT_SUB="$EXPECT_SUB" node -e '
const crypto = require("crypto");
const { ID_TOKEN, JWKS, ISSUER, NONCE, LOGIN, EXPECT_SUB, OIDC_CLIENT_ID } = process.env;
const [h, p, s] = ID_TOKEN.split(".");
const header = JSON.parse(Buffer.from(h, "base64url"));
const payload = JSON.parse(Buffer.from(p, "base64url"));
const die = (m) => { console.error("id_token: " + m + "\nheader=" + JSON.stringify(header) + "\npayload=" + JSON.stringify(payload)); process.exit(1); };
if (header.alg !== "RS256") die("alg is not RS256");
const jwk = JSON.parse(JWKS).keys.find((k) => k.kid === header.kid);
if (!jwk) die("kid not in jwks");
const ok = crypto.verify("RSA-SHA256", Buffer.from(h + "." + p), crypto.createPublicKey({ key: jwk, format: "jwk" }), Buffer.from(s, "base64url"));
if (!ok) die("bad signature");
const want = { iss: ISSUER, aud: OIDC_CLIENT_ID, nonce: NONCE, sub: EXPECT_SUB,
  email: LOGIN + "@example.test", email_verified: true, preferred_username: LOGIN, name: "Test User " + LOGIN };
for (const [k, v] of Object.entries(want)) if (payload[k] !== v) die(k + " is " + JSON.stringify(payload[k]) + ", expected " + JSON.stringify(v));
const now = Math.floor(Date.now() / 1000);
if (!(payload.exp > now && payload.iat <= now + 5)) die("bad iat/exp");
console.error("check.sh: 6. id_token ok: " + JSON.stringify(payload));
' || fail "id_token verification failed"

# --- 7. userinfo with the access token --------------------------------------
USERINFO_EP="$(json userinfo_endpoint <"$TMP/disc.json")"
"${C[@]}" -H "Authorization: Bearer $ACCESS_TOKEN" "$USERINFO_EP" >"$TMP/userinfo.json" || fail "userinfo request failed"
[ "$(json email <"$TMP/userinfo.json")" = "$LOGIN@example.test" ] || fail "userinfo: email mismatch: $(cat "$TMP/userinfo.json")"
step "7. userinfo ok"

# --- 8. code is single-use ---------------------------------------------------
curl -sS --max-time 10 -o "$TMP/token2.json" -w '%{http_code}' -u "$OIDC_CLIENT_ID:$OIDC_CLIENT_SECRET" \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE" \
  --data-urlencode "redirect_uri=$OIDC_REDIRECT_URI" --data-urlencode "code_verifier=$VERIFIER" \
  "$TOKEN_EP" >"$TMP/token2.status" || fail "second token request failed"
[ "$(cat "$TMP/token2.status")" = 400 ] || fail "code reuse: expected 400, got $(cat "$TMP/token2.status")"
step "8. code reuse -> 400 $(json error <"$TMP/token2.json")"

# --- 9. second user, fresh jar, -unverified, client_secret_post -------------
JAR="$TMP/cookies2"
C=(curl -sS --max-time 10 -b "$JAR" -c "$JAR")
LOGIN2="bob-unverified"
VERIFIER2="$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')"
CHALLENGE2="$(node -e 'process.stdout.write(require("crypto").createHash("sha256").update(process.argv[1]).digest("base64url"))' "$VERIFIER2")"
AUTH_URL2="$AUTH_EP?response_type=code&client_id=$(enc "$OIDC_CLIENT_ID")&redirect_uri=$(enc "$OIDC_REDIRECT_URI")&scope=$(enc 'openid email profile')&state=s2&nonce=n2&code_challenge=$CHALLENGE2&code_challenge_method=S256"
"${C[@]}" -D "$TMP/h9a" -o /dev/null "$AUTH_URL2" || fail "authorize 2 failed"
LOC="$(header "$TMP/h9a" location)"
"${C[@]}" -D "$TMP/h9b" -o /dev/null --data-urlencode "login=$LOGIN2" --data-urlencode "password=secret" "$LOC/login" || fail "login 2 failed"
[ "$(status "$TMP/h9b")" = 303 ] || fail "login 2: expected 303, got $(status "$TMP/h9b")"
"${C[@]}" -D "$TMP/h9c" -o /dev/null "$(header "$TMP/h9b" location)" || fail "resume 2 failed"
LOC="$(header "$TMP/h9c" location)"
QS="${LOC#*\?}"
CODE2="$(param code)"
[ -n "$CODE2" ] || fail "flow 2: no code in '$LOC'"
curl -sS --max-time 10 -o "$TMP/token3.json" -w '%{http_code}' \
  --data-urlencode grant_type=authorization_code --data-urlencode "code=$CODE2" \
  --data-urlencode "client_id=$OIDC_CLIENT_ID" --data-urlencode "client_secret=$OIDC_CLIENT_SECRET" \
  --data-urlencode "redirect_uri=$OIDC_REDIRECT_URI" --data-urlencode "code_verifier=$VERIFIER2" \
  "$TOKEN_EP" >"$TMP/token3.status" || fail "token 3 request failed"
[ "$(cat "$TMP/token3.status")" = 200 ] || fail "token (client_secret_post): expected 200, got $(cat "$TMP/token3.status"): $(cat "$TMP/token3.json")"
json id_token <"$TMP/token3.json" | node -e '
const p = JSON.parse(Buffer.from(require("fs").readFileSync(0, "utf8").split(".")[1], "base64url"));
if (p.email !== "bob-unverified@example.test" || p.email_verified !== false || p.nonce !== "n2") { console.error(JSON.stringify(p)); process.exit(1); }
' || fail "flow 2: id_token claims wrong (expected email_verified false)"
step "9. second user (-unverified, client_secret_post) ok"

# --- 9b. same jar: _session cookie -> code without login; prompt=login -> form
"${C[@]}" -D "$TMP/h9d" -o /dev/null "${AUTH_URL2/state=s2/state=s2b}" || fail "authorize 2b failed"
LOC="$(header "$TMP/h9d" location)"
case "$LOC" in "$OIDC_REDIRECT_URI?code="*"&state=s2b&"*) ;; *) fail "authorize with _session: expected direct code redirect, got $(status "$TMP/h9d") '$LOC'";; esac
"${C[@]}" -D "$TMP/h9e" -o /dev/null "${AUTH_URL2/state=s2/state=s2c}&prompt=login" || fail "authorize 2c failed"
LOC="$(header "$TMP/h9e" location)"
case "$LOC" in "$ISSUER/interaction/"*) ;; *) fail "authorize with prompt=login: expected interaction, got '$LOC'";; esac
step "9b. existing _session -> 303 straight to redirect_uri; prompt=login -> 303 interaction"

# --- 9c. login POST without the _interaction cookie -> 400 ------------------
curl -sS --max-time 10 -o "$TMP/nocookie.txt" -w '%{http_code}' --data 'login=x&password=secret' "$LOC/login" >"$TMP/nocookie.status" || fail "cookie-less POST failed"
[ "$(cat "$TMP/nocookie.status")" = 400 ] || fail "login POST without cookie: expected 400, got $(cat "$TMP/nocookie.status")"
step "9c. login POST without _interaction cookie -> 400 ($(tr -d '\n' <"$TMP/nocookie.txt"))"

# --- 10. PKCE is required ----------------------------------------------------
"${C[@]}" -D "$TMP/h10" -o /dev/null \
  "$AUTH_EP?response_type=code&client_id=$(enc "$OIDC_CLIENT_ID")&redirect_uri=$(enc "$OIDC_REDIRECT_URI")&scope=openid&state=s3&nonce=n3" || fail "authorize 3 failed"
LOC="$(header "$TMP/h10" location)"
case "$LOC" in *error=invalid_request*) ;; *) fail "authorize without PKCE: expected error redirect, got $(status "$TMP/h10") '$LOC'";; esac
step "10. authorize without code_challenge -> error=invalid_request"

# --- stop ---------------------------------------------------------------------
kill -TERM "$PID"
for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null && fail "provider did not exit within 5s of SIGTERM"
RC=0; wait "$PID" || RC=$?
PID=""
[ "$RC" = 0 ] || fail "provider exited with $RC on SIGTERM"
step "provider stopped cleanly on SIGTERM"
echo "check.sh: provider stderr (expected: grant.error for the reused code, authorization.error for the missing PKCE):" >&2
sed 's/^/  | /' "$TMP/stderr" >&2
echo "check.sh: OK"

// Local OpenID Connect provider for Autoglue's integration tests.
//
// Loopback only, in-memory, one confidential client, any login name with the
// password "secret". See README.md in this folder for the HTTP flow.
//
// stdout carries exactly one line, `READY <issuer>`, once the server listens;
// everything else (oidc-provider notices, request errors) goes to stderr.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

// oidc-provider prints development notices with console.info (stdout). Keep
// stdout for the READY line only.
console.log = console.error;
console.info = console.error;

const env = (name, fallback) => {
  const value = process.env[name];
  if (value !== undefined && value !== '') return value;
  if (fallback !== undefined) return fallback;
  console.error(`provider.mjs: environment variable ${name} is required`);
  process.exit(2);
};

const PORT = Number.parseInt(env('OIDC_PORT', '0'), 10);
const CLIENT_ID = env('OIDC_CLIENT_ID');
const CLIENT_SECRET = env('OIDC_CLIENT_SECRET');
const REDIRECT_URI = env('OIDC_REDIRECT_URI');
const HOST = '127.0.0.1';
const PASSWORD = 'secret';
const LOGIN_RE = /^[A-Za-z0-9._+-]{1,64}$/;

if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  console.error(`provider.mjs: OIDC_PORT must be 0..65535, got ${process.env.OIDC_PORT}`);
  process.exit(2);
}

// ---------------------------------------------------------------- accounts --

// sub = first 32 hex chars of sha256("autoglue-test-oidc:" + login): stable
// across restarts, opaque (not equal to the login or the email).
const subFor = (login) => createHash('sha256').update(`autoglue-test-oidc:${login}`).digest('hex').slice(0, 32);
const loginsBySub = new Map();

const claimsFor = (login, sub) => ({
  sub,
  email: `${login}@example.test`,
  email_verified: !login.endsWith('-unverified'),
  name: `Test User ${login}`,
  preferred_username: login,
});

async function findAccount(ctx, sub) {
  const login = loginsBySub.get(sub);
  if (login === undefined) return undefined;
  return {
    accountId: sub,
    async claims() {
      return claimsFor(login, sub);
    },
  };
}

// --------------------------------------------------------------- keys, etc --

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `test-${randomBytes(6).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

// ------------------------------------------------------------ interactions --

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

const loginPage = (uid, error) => `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign-in</title></head>
<body>
<h1>Sign-in (Autoglue test provider)</h1>
${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
  <input type="text" name="login" required placeholder="any login name">
  <input type="password" name="password" required placeholder="secret">
  <button type="submit">Sign-in</button>
</form>
<p><a href="/interaction/${escapeHtml(uid)}/abort">Cancel</a></p>
</body></html>
`;

const send = (res, status, type, body) => {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
};

const readForm = (req) => new Promise((resolve, reject) => {
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > 64 * 1024) {
      reject(new Error('request body too large'));
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
  req.on('error', reject);
});

// Routes (all under /interaction/<uid>, where oidc-provider's _interaction
// cookie is scoped):
//   GET  /interaction/<uid>          login form (or auto-finish if logged in)
//   POST /interaction/<uid>/login    form fields: login, password
//   GET  /interaction/<uid>/abort    access_denied back to the client
async function handleInteraction(provider, req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login|\/abort)?$/);
  if (!m) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  const [, uid, action] = m;

  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    const what = err.error_description ? `${err.error}: ${err.error_description}` : err.message;
    return send(res, 400, 'text/plain; charset=utf-8', `interaction error: ${what}\n`);
  }
  if (details.uid !== uid) {
    return send(res, 400, 'text/plain; charset=utf-8', 'interaction uid does not match the _interaction cookie\n');
  }
  const { prompt } = details;

  if (action === '/abort' && req.method === 'GET') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }

  if (!action && req.method === 'GET') {
    if (prompt.name === 'login') return send(res, 200, 'text/html; charset=utf-8', loginPage(uid));
    // Only reachable if a grant lacks something loadExistingGrant did not
    // add; consent is automatic for the single first-party client.
    return finishConsent(provider, req, res, details);
  }

  if (action === '/login' && req.method === 'POST') {
    if (prompt.name !== 'login') return finishConsent(provider, req, res, details);
    let form;
    try {
      form = await readForm(req);
    } catch (err) {
      return send(res, 400, 'text/plain; charset=utf-8', `${err.message}\n`);
    }
    const login = form.get('login') ?? '';
    const password = form.get('password') ?? '';
    if (!LOGIN_RE.test(login)) {
      return send(res, 400, 'text/html; charset=utf-8', loginPage(uid, 'login must match [A-Za-z0-9._+-]{1,64}'));
    }
    if (password !== PASSWORD) {
      return send(res, 401, 'text/html; charset=utf-8', loginPage(uid, 'invalid login or password'));
    }
    const sub = subFor(login);
    loginsBySub.set(sub, login);
    // Consent is granted in loadExistingGrant when the authorization resumes.
    return provider.interactionFinished(req, res, {
      login: { accountId: sub, amr: ['pwd'] },
    }, { mergeWithLastSubmission: false });
  }

  return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
}

async function finishConsent(provider, req, res, { prompt, grantId, session, params }) {
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const { details } = prompt;
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  if (details.missingResourceScopes) {
    for (const [indicator, scope] of Object.entries(details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
  }
  return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, {
    mergeWithLastSubmission: true,
  });
}

// Auto-consent: the test client is first-party, so every authorization gets
// a grant covering exactly the requested OIDC scopes and claims; the consent
// prompt never shows.
async function loadExistingGrant(ctx) {
  const grantId = ctx.oidc.result?.consent?.grantId
    || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
  let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
  if (!grant) {
    grant = new ctx.oidc.provider.Grant({
      accountId: ctx.oidc.session.accountId,
      clientId: ctx.oidc.client.clientId,
    });
  }
  grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
  const claims = [...ctx.oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  await grant.save();
  return grant;
}

// ------------------------------------------------------------------ server --

let provider;
let providerCallback;

const server = createServer((req, res) => {
  if (!provider) {
    send(res, 503, 'text/plain; charset=utf-8', 'starting\n');
    return;
  }
  const url = new URL(req.url, `http://${HOST}`);
  if (url.pathname === '/interaction' || url.pathname.startsWith('/interaction/')) {
    handleInteraction(provider, req, res, url).catch((err) => {
      console.error('interaction failure:', err);
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
    return;
  }
  providerCallback(req, res);
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  const issuer = `http://${HOST}:${port}`;

  provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      // oidc-provider accepts client_secret_basic and client_secret_post
      // interchangeably for a client registered with either of them.
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys: [signingJwk] },
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      // The default SameSite=None for _session would also make oidc-provider
      // set "<name>.legacy" duplicates; Lax is what a plain-http test needs.
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    findAccount,
    loadExistingGrant,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    scopes: ['openid', 'email', 'profile'],
    // Put the scope-requested claims (email, name, ...) into the ID token of
    // the code flow too, not only into userinfo.
    conformIdTokenClaims: false,
    // PKCE (S256) required for every client, the confidential one included.
    pkce: { methods: ['S256'], required: () => true },
    // Explicit TTLs (seconds); also silences oidc-provider's notices.
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 600,
      IdToken: 3600,
      Interaction: 3600,
      Grant: 86400,
      Session: 86400,
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    interactions: {
      // Absolute, so every Location header of the flow is an absolute URL.
      url: (ctx, interaction) => `${issuer}/interaction/${interaction.uid}`,
    },
    renderError(ctx, out) {
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `${out.error}: ${out.error_description ?? ''}\n`;
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error:', err));
  // Client-facing errors are generic ("grant request is invalid"); log the
  // real reason to stderr to make failing tests debuggable.
  for (const event of ['grant.error', 'authorization.error', 'userinfo.error', 'introspection.error']) {
    provider.on(event, (ctx, err) => {
      console.error(`${event}: ${err.error ?? err.name}: ${err.error_detail ?? err.error_description ?? err.message}`);
    });
  }
  providerCallback = provider.callback();

  process.stdout.write(`READY ${issuer}\n`);
});

server.on('error', (err) => {
  console.error('provider.mjs: server error:', err.message);
  process.exit(1);
});

let stopping = false;
const stop = (signal) => {
  if (stopping) return;
  stopping = true;
  console.error(`provider.mjs: ${signal}, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

// A real OpenID provider (oidc-provider from npm) for mcp-hub's sign-in
// tests, on loopback only.
//
//   node oidc_provider.mjs PORT HUB_URL REDIRECT_URI [ALG]
//
// - Resource indicators (RFC 8707): any resource is accepted, and becomes
//   the `aud` of a JWT access token (scope `mcp`), signed RS256 by default
//   (ALG may be ES256 or EdDSA).
// - Clients: `cc-admin`, `cc-family` and `cc-nobody` (client_credentials,
//   secret `<id>-secret`, groups `mcp-admins`, `family`, none), and `app`,
//   a public auth-code + PKCE client whose redirect URI is REDIRECT_URI.
// - Sign-in is headless: devInteractions are off and `interactions.url`
//   points at /interaction/<uid>, which this script answers itself by
//   logging in the account its `as` query parameter names (default alice)
//   and granting what was asked (consent included), so a test can follow
//   the redirects with a cookie jar and get a code.
// - Admin hooks, for the tests only:
//   POST /admin/rotate  new signing keys: a new Provider with fresh keys
//                        takes over the same port (the JWKS changes, the
//                        issuer does not);
//   POST /admin/mint    a JWT with the claims posted, signed as asked:
//                        {"claims": {...}, "sign": "provider" | "none" |
//                        "hs256-public" | "stranger"}.

import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const [port, hub, redirectUri, alg = 'RS256'] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const accounts = {
  alice: { groups: ['family'], preferred_username: 'alice' },
  bob: { groups: ['mcp-admins'], preferred_username: 'bob' },
  carol: { groups: ['strangers'], preferred_username: 'carol' },
};
const clientGroups = { 'cc-admin': ['mcp-admins'], 'cc-family': ['family'], 'cc-nobody': [] };

function newKey(kid) {
  const { privateKey } = alg === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : alg === 'EdDSA'
      ? crypto.generateKeyPairSync('ed25519')
      : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg, use: 'sig', ...privateKey.export({ format: 'jwk' }), _key: privateKey };
}

let generation = 0;
let signing = newKey(`k${generation}`);

function configuration() {
  const { _key, ...jwk } = signing;
  return {
    clients: [
      ...Object.keys(clientGroups).map((id) => ({
        client_id: id,
        client_secret: `${id}-secret`,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: alg,
      })),
      {
        client_id: 'app',
        application_type: 'native',
        grant_types: ['authorization_code', 'refresh_token'],
        redirect_uris: [redirectUri],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        id_token_signed_response_alg: alg,
      },
    ],
    jwks: { keys: [jwk] },
    scopes: ['openid', 'offline_access', 'mcp'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => oneOf ?? hub,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resource) => ({
          scope: 'mcp',
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg } },
        }),
      },
    },
    interactions: { url: async (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (ctx, id) => accounts[id] && ({
      accountId: id,
      claims: async () => ({ sub: id, ...accounts[id] }),
    }),
    extraTokenClaims: async (ctx, token) => {
      if (token.accountId && accounts[token.accountId]) return accounts[token.accountId];
      if (token.clientId in clientGroups) return { groups: clientGroups[token.clientId] };
      return undefined;
    },
    ttl: { AccessToken: 600, ClientCredentials: 600 },
  };
}

function newProvider() {
  const p = new Provider(issuer, configuration());
  p.proxy = false;
  return p;
}

let provider = newProvider();
let handler = provider.callback();

// Logs in the account named by `as` and grants what the client asked for.
async function interaction(req, res) {
  const p = provider;
  const details = await p.interactionDetails(req, res);
  const who = new URL(req.url, issuer).searchParams.get('as') || 'alice';
  const { params } = details;
  const grant = new p.Grant({ accountId: who, clientId: params.client_id });
  // `mcp` is both a provider scope (declared in `scopes`, so discovery lists
  // it) and the resource server's: granted as both.
  if (params.scope) grant.addOIDCScope(params.scope);
  const resource = params.resource || hub;
  for (const r of [].concat(resource)) grant.addResourceScope(r, 'mcp');
  const grantId = await grant.save();
  await p.interactionFinished(req, res, { login: { accountId: who }, consent: { grantId } },
    { mergeWithLastSubmission: false });
}

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function mint({ claims, sign = 'provider' }) {
  const now = Math.floor(Date.now() / 1000);
  const body = { iss: issuer, sub: 'minted', aud: hub, iat: now, exp: now + 300, scope: 'mcp',
    groups: ['mcp-admins'], ...claims };
  if (sign === 'none') return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(body)}.`;
  if (sign === 'hs256-public') {
    // The classic confusion: the provider's public key as an HMAC secret.
    const pub = crypto.createPublicKey(signing._key).export({ format: 'pem', type: 'spki' });
    const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: signing.kid })}.${b64(body)}`;
    return `${input}.${crypto.createHmac('sha256', pub).update(input).digest('base64url')}`;
  }
  const key = sign === 'stranger' ? newKey('stranger') : signing;
  const input = `${b64({ alg, typ: 'JWT', kid: key.kid })}.${b64(body)}`;
  const sig = alg === 'EdDSA'
    ? crypto.sign(null, Buffer.from(input), key._key)
    : crypto.sign('sha256', Buffer.from(input), alg === 'ES256' ? { key: key._key, dsaEncoding: 'ieee-p1363' } : key._key);
  return `${input}.${sig.toString('base64url')}`;
}

function readJson(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => resolve(data ? JSON.parse(data) : {}));
  });
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.url.startsWith('/interaction/')) return await interaction(req, res);
    if (req.method === 'POST' && req.url === '/admin/rotate') {
      generation += 1;
      signing = newKey(`k${generation}`);
      provider = newProvider();
      handler = provider.callback();
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ kid: signing.kid }));
    }
    if (req.method === 'POST' && req.url === '/admin/mint') {
      const token = mint(await readJson(req));
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ token }));
    }
    return handler(req, res);
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(String(e && e.stack || e));
  }
});
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc provider ${issuer} (${alg}) for ${hub}`);
});

// A real OpenID Connect provider for the tests: oidc-provider (certified), configured from a
// JSON file whose path is the first argument. The file names the issuer, the port, the signing
// keys (private JWKs), the clients, and where the people live: `users` is re-read at every
// sign-in, so a test changes someone's groups by rewriting it.
//
// Sign-in is oidc-provider's development interaction: any login name with any password; the
// login name is the account id, looked up in the users file for its claims.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function person(accountId) {
  const users = JSON.parse(readFileSync(config.users, 'utf8'));
  return users[accountId];
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: config.keys },
  cookies: { keys: [config.cookie_key] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // The ID token carries the scopes' claims (groups included), as company providers are
  // configured to do for relying parties that read groups from it.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { required: () => true },
  ttl: { IdToken: config.id_token_ttl_s ?? 3600 },
  async findAccount(ctx, accountId) {
    const found = person(accountId);
    if (!found) return undefined;
    return {
      accountId,
      async claims() {
        return {
          sub: accountId,
          email: found.email,
          email_verified: true,
          name: found.name ?? accountId,
          groups: found.groups ?? [],
        };
      },
    };
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`ready ${config.issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}

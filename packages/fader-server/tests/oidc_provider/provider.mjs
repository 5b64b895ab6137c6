// A real OpenID provider for Fader's single sign-on tests: the certified npm `oidc-provider`,
// configured with one client (Fader, confidential, PKCE S256 required, loopback redirects for
// `fader login --sso`) and static accounts read from a JSON file at every login, so a test
// changes a person's groups between two logins by rewriting the file.
//
// Environment: OIDC_PORT, OIDC_ACCOUNTS (path: {"alice": {"groups": [...], "email": ...}}),
// OIDC_CLIENT (JSON: client_id, client_secret, redirect_uris, post_logout_redirect_uris).
// Prints one line "ready <issuer>" on stdout once it listens on 127.0.0.1.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const accountsFile = process.env.OIDC_ACCOUNTS;
const client = JSON.parse(process.env.OIDC_CLIENT);

function account(id) {
  const accounts = JSON.parse(readFileSync(accountsFile, 'utf8'));
  return Object.hasOwn(accounts, id) ? accounts[id] : undefined;
}

const provider = new Provider(issuer, {
  clients: [{
    ...client,
    application_type: 'native', // loopback redirect URIs match on any port (RFC 8252 7.3)
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  conformIdTokenClaims: false, // the groups claim rides in the ID token, as Fader reads it
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'email', 'groups'],
  features: {
    devInteractions: { enabled: true }, // a login form taking any known account name
    rpInitiatedLogout: { enabled: true },
  },
  cookies: { keys: ['fader-sso-tests-only'] },
  async findAccount(_ctx, id) {
    const found = account(id);
    if (found === undefined) return undefined;
    return {
      accountId: id,
      async claims() {
        const now = account(id) ?? found; // the groups of this very login
        return {
          sub: id,
          preferred_username: now.preferred_username ?? id,
          name: now.name ?? id,
          email: now.email,
          email_verified: true,
          groups: now.groups ?? [],
        };
      },
    };
  },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

"""Single sign-on with OpenID Connect: the admin login page's "Sign in with …" button, the provider's
callback, the ID token's verification, and the opsboard user, teams and role kept in line with the
provider's claims on every login. Configured from the environment (OIDC_*, LOCAL_PASSWORDS; docs/sso.md).

* `provider` — the provider's endpoints (discovery, overrides) and requests to it through the outbound
  address policy;
* `backend` — the authentication backend: token, ID token checks, user info;
* `sync` — the user, their teams (OIDC_TEAM_MAP) and global role from the claims;
* `views`, `urls` — the start and callback pages; `forms` — the login form and page context.
"""

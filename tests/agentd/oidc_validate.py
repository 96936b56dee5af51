#!/usr/bin/env python3
"""An OIDC relying party, as OpenBao's or Vault's JWT auth is one, using Debian's PyJWT alone.

  oidc_validate.py validate ISSUER_URL TOKEN AUDIENCE
      Reads ISSUER_URL/.well-known/openid-configuration, takes the keys from the jwks_uri it
      names (PyJWKClient), and checks the token's signature, audience and issuer. Prints
      {"valid": true, "claims": {...}, "issuer": ..., "jwks_uri": ...} or {"valid": false,
      "error": "..."}.
  oidc_validate.py get URL [HOST]
      One GET, with a Host header of its own when HOST is given. Prints {"status", "body",
      "headers"}; status 0 and the error as body when no HTTP answer came.

HTTPS trusts the certificates in $SSL_CERT_FILE, as OpenSSL's default paths do.
"""
import json
import sys
import urllib.error
import urllib.request

import jwt


def get(url, host=None):
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)
    except (urllib.error.URLError, OSError) as error:  # no HTTP answer at all
        return 0, f"{type(error).__name__}: {error}", {}


def validate(issuer, token, audience):
    status, body, _ = get(issuer.rstrip("/") + "/.well-known/openid-configuration")
    if status != 200:
        return {"valid": False, "error": f"discovery answered {status}: {body}"}
    document = json.loads(body)
    # OpenID Connect Discovery 1.0, section 4.3: the document names the issuer it was fetched for.
    if document["issuer"] != issuer:
        return {"valid": False, "error": f"the document names issuer {document['issuer']}, not {issuer}"}
    client = jwt.PyJWKClient(document["jwks_uri"], cache_keys=False)
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=document["id_token_signing_alg_values_supported"],
                            audience=audience, issuer=document["issuer"])
    except (jwt.PyJWKClientError, jwt.InvalidTokenError) as error:
        return {"valid": False, "error": f"{type(error).__name__}: {error}"}
    return {"valid": True, "claims": claims, "issuer": document["issuer"], "jwks_uri": document["jwks_uri"]}


def main():
    if sys.argv[1] == "validate":
        print(json.dumps(validate(sys.argv[2], sys.argv[3], sys.argv[4])))
    elif sys.argv[1] == "get":
        status, body, headers = get(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
        print(json.dumps({"status": status, "body": body, "headers": headers}))
    else:
        sys.exit(f"unknown command {sys.argv[1]}")


if __name__ == "__main__":
    main()

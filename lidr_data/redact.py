"""Secrets out of everything written or printed: by the name they are stored under and by the shape of the value.

Recipes end up in run folders, manifests, dataset cards and Hub commits, and error messages quote what they
refuse. `redact_secrets` replaces, anywhere in a nested mapping/list, the value under a secret-looking name and
every secret-shaped part of a text; `redact_text` does the second for any text (the `LidrError` constructor runs
it on every message). It imports nothing of the package, so that any module (errors.py included) may use it.

Names: split into words (`hub_token`, `hub-token`, `hubToken`, `HUB_TOKEN` are the same name), then a word that is
or ends with token/secret/password/passwd/passphrase/apikey/accesskey/credential/auth..., or an api/access/secret/
private key, or `hf` with read/write. Counted and special tokens are not secrets: `max_tokens`, `tokenizer`,
`pad_token`, `token_ids`, `top_logprobs`, `author`.
Values: URL userinfo in any form (`https://TOKEN@host`, `https://u:pa/ss@host`), `Authorization:` headers,
`Bearer`/`Basic` credentials, `NAME=VALUE` with a secret NAME, and the shapes of common tokens (`hf_...`,
`sk-...`, GitHub, GitLab, Slack, AWS, Google keys, JWTs).
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"

# Words that name a secret, alone or at the end of a compound word (hubtoken, accesstoken, clientsecret, oauth).
_SECRET_SUFFIXES = ("token", "secret", "secrets", "password", "passwd", "passphrase", "apikey", "apikeys",
                    "accesskey", "secretkey", "privatekey", "credential", "credentials", "auth")
# Words that name a secret only as a whole word.
_SECRET_WORDS = {"pwd", "creds", "authorization", "bearer", "cookie", "cookies", "jwt", "pat", "dsn"}
# `<word>_key`: a key only after one of these (sort_key and key_field are not secrets).
_KEY_OWNERS = {"api", "access", "secret", "private", "client", "auth", "signing", "encryption", "master", "service",
               "ssh", "hf", "hub", "openai", "anthropic", "license", "subscription"}
# `pad_token`, `eos_token`...: special tokens of a tokenizer (text such as "<pad>", not a credential).
_SPECIAL_TOKEN_OWNERS = {"pad", "bos", "eos", "unk", "sep", "cls", "mask", "start", "end", "stop", "special",
                         "image", "audio", "video", "additional", "boi", "eoi", "think", "tool"}
# `token_id`, `token_type_ids`...: numbers or names about tokens, not credentials.
_TOKEN_ABOUT = {"id", "ids", "type", "types", "count", "counts", "length", "len", "limit", "budget", "level",
                "healing", "dropout", "embedding", "embeddings", "index", "map"}
_HF_ACCESS = {"read", "write", "readwrite", "access", "pat", "key", "login"}


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)  # apiKey -> api_Key
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def secret_name(name: object) -> bool:
    """Whether a mapping key looks like it holds a secret (see the module docstring)."""
    words = _words(str(name))
    for i, w in enumerate(words):
        before, after = (words[i - 1] if i else ""), (words[i + 1] if i + 1 < len(words) else "")
        if w == "token" and (before in _SPECIAL_TOKEN_OWNERS or after in _TOKEN_ABOUT):
            continue
        if (w in _SECRET_WORDS or w.endswith(_SECRET_SUFFIXES)
                or (w.startswith("auth") and not w.startswith("author"))  # auth, authtoken, authkey; not author
                or (w == "key" and (before in _KEY_OWNERS or len(words) == 1))):
            return True
    return "hf" in words and any(w in _HF_ACCESS for w in words)


# scheme://USERINFO@host: with a colon the password may hold anything up to the last '@' of the word ('/' too);
# without one, the user part alone is the secret (https://hf_TOKEN@host). `https:/...` too: a URL turned into a
# path (as libraries quote it in errors) loses a slash. Schemes of two letters or more: `C:/` is a drive.
# Every pattern starts only where a word starts and scans a bounded length: linear time on any text (a 64 Ki
# character value without spaces took minutes with unbounded repeats).
_URL_USERINFO = re.compile(r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]{1,31}:/{1,2})"
                           r"(?:[^\s/@:'\"]{0,256}:[^\s'\"]{0,256}@|[^\s/@'\"]{1,256}@)")
_AUTH_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)[^\n\r'\"]+")
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b((?:bearer|basic|token)\s+)([A-Za-z0-9._~+/\-]{12,}=*)")
_ASSIGNMENT = re.compile(r"(?<![A-Za-z0-9_.\-])([A-Za-z][A-Za-z0-9_.\-]{0,63})(\s*=\s*)([^\s&'\",;]+)")
_TOKEN_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:hf_[A-Za-z0-9]{16,}"
    r"|sk-[A-Za-z0-9_\-]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{30,}"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})")


def _credential_like(text: str) -> bool:
    """After Bearer/Basic: a credential, not an English word ("Basic arithmetic")."""
    return (any(c.isdigit() for c in text) or any(c in "._~+/=-" for c in text)
            or (any(c.isupper() for c in text[1:]) and any(c.islower() for c in text)))


def redact_text(text: str) -> str:
    """`text` with every secret-shaped part replaced by "<redacted>" (URL userinfo, Authorization headers,
    Bearer/Basic credentials, NAME=VALUE with a secret NAME, token shapes). Idempotent."""
    if not isinstance(text, str) or not text:
        return text
    text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
    text = _AUTH_HEADER.sub(rf"\1{REDACTED}", text)
    text = _SCHEME_CREDENTIAL.sub(lambda m: m.group(1) + REDACTED if _credential_like(m.group(2)) else m.group(0),
                                  text)
    text = _ASSIGNMENT.sub(lambda m: m.group(1) + m.group(2) + REDACTED
                           if _secret_assignment(m.group(1), m.group(3)) else m.group(0), text)
    return _TOKEN_SHAPES.sub(REDACTED, text)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _secret_assignment(name: str, value: str) -> bool:
    # A bare `KEY=VALUE` in a text is the usual placeholder of messages and help, not a secret.
    return secret_name(name) and name.lower() != "key" and not _env_name_option(name, value)


def _env_name_option(name: str, value: object) -> bool:
    """`api_key_env: OPENAI_API_KEY`: the name of the variable holding a secret is not the secret."""
    return (_words(name)[-1:] == ["env"] and isinstance(value, str) and bool(_ENV_NAME.fullmatch(value))
            and value != REDACTED)


def _redacted_value(name: object, value: Any) -> bool:
    return (secret_name(name) and value not in (None, "") and not isinstance(value, bool)
            and not _env_name_option(str(name), value))


def redact_secrets(obj: Any) -> Any:
    """`obj` with the values under secret-looking names replaced by "<redacted>" and the secret-shaped parts of
    every text (`redact_text`) too, at any depth. A `*_env` option naming an environment variable stays: the name
    is not the secret. A true/false flag (`use_auth_token: true`) holds no secret and stays."""
    if isinstance(obj, dict):
        return {k: REDACTED if _redacted_value(k, v) else redact_secrets(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_secrets(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def secret_paths(obj: Any, path: str = "") -> list[str]:
    """The field paths (`train.hub_token`, `eval.winrate[3]`) whose values `redact_secrets` would change: for
    errors that name where a secret was found without quoting it."""
    found: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            sub = f"{path}.{k}" if path else str(k)
            found += [sub] if _redacted_value(k, v) else secret_paths(v, sub)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found += secret_paths(v, f"{path}[{i}]")
    elif isinstance(obj, str) and redact_text(obj) != obj:
        found.append(path or "value")
    return found

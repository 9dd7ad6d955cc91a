"""Who may do what: none, htpasswd (bcrypt, Basic), or Docker token auth with this registry
as its own token issuer (JWTs with an `access` claim, docker's token spec): HS256 with a
shared secret, or RS256 with an `x5c` certificate chain in the header, which is what CNCF
distribution's `auth: token` checks against its `rootcertbundle` — so `pallet registry` can
be the token service of a docker-registry too.

The HTTP handlers state what a request needs (a list of `Scope`s); an `Authorizer` answers
with the account name or raises UNAUTHORIZED (with the challenge to answer) or DENIED.
"""

from __future__ import annotations

import abc
import base64
import fnmatch
import hashlib
import os
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import bcrypt
import jwt

from pallet.registry.errors import RegistryError
from pallet.registry.scopes import PULL, REPOSITORY, Scope, format_challenge
from pallet.registry.server.config import AccessRule, Config

ANONYMOUS = ""


@dataclass
class Identity:
    account: str            # ANONYMOUS when none was given
    granted: list[Scope] | None  # None: everything (no auth, or a Basic-authenticated user)

    def allows(self, need: Scope) -> bool:
        if self.granted is None:
            return True
        for g in self.granted:
            if g.type == need.type and g.name == need.name and (
                    "*" in g.actions or all(a in g.actions for a in need.actions)):
                return True
        return False


class Htpasswd:
    """bcrypt entries of an htpasswd file (`htpasswd -B`), re-read when it changes.

    bcrypt is slow on purpose (~0.1 s), and a push makes dozens of requests; a verified
    (user, password) pair is remembered by its hash, in memory only."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._mtime = -1.0
        self._entries: dict[str, bytes] = {}
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    def _load(self) -> None:
        st = os.stat(self.path)
        if st.st_mtime == self._mtime:
            return
        entries = {}
        with open(self.path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#") or ":" not in line:
                    continue
                user, _, hashed = line.partition(":")
                if hashed.startswith(("$2y$", "$2a$", "$2b$")):
                    entries[user] = hashed.encode()
        self._entries, self._mtime, self._ok = entries, st.st_mtime, set()

    def has_user(self, user: str) -> bool:
        with self._lock:
            self._load()
            return user in self._entries

    def check(self, user: str, password: str) -> bool:
        with self._lock:
            self._load()
            hashed = self._entries.get(user)
            if hashed is None:
                return False
            key = hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed])).digest()
            if key in self._ok:
                return True
        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        with self._lock:
            self._ok.add(key)
        return True


def basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    value = headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def bearer_token(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _read_only(need: list[Scope]) -> bool:
    return all(set(s.actions) <= {PULL} for s in need)


class Authorizer(abc.ABC):
    """How a request proves who it is: none, htpasswd or a bearer token (the subclasses)."""

    @abc.abstractmethod
    def authorize(self, headers: Mapping[str, str], need: list[Scope]) -> Identity:
        """The identity `headers` prove, allowed `need`; raises otherwise."""


class NoAuth(Authorizer):
    def authorize(self, headers: Mapping[str, str], need: list[Scope]) -> Identity:
        return Identity(ANONYMOUS, None)


class BasicAuth(Authorizer):
    """htpasswd users may do everything, as with distribution's htpasswd auth; anonymous
    requests may pull when `anonymous_read` is set."""

    def __init__(self, htpasswd: Htpasswd, realm: str, anonymous_read: bool) -> None:
        self.htpasswd, self.realm, self.anonymous_read = htpasswd, realm, anonymous_read

    def authorize(self, headers: Mapping[str, str], need: list[Scope]) -> Identity:
        creds = basic_credentials(headers)
        if creds is not None and self.htpasswd.check(*creds):
            return Identity(creds[0], None)
        if creds is None and self.anonymous_read and need and _read_only(need):
            return Identity(ANONYMOUS, [*need])
        raise RegistryError("UNAUTHORIZED", headers={
            "WWW-Authenticate": format_challenge("Basic", {"realm": self.realm})})


class Signer:
    """Signs and verifies this registry's tokens: HS256 with a secret, or RS256 with a key
    whose certificate chain rides in the JWT header (`x5c`, base64 DER, leaf first)."""

    def __init__(self, algorithm: str, key: bytes, public: object = None,
                 chain: list[str] | None = None) -> None:
        self.algorithm, self._key, self._public, self.chain = algorithm, key, public, chain

    @classmethod
    def hs256(cls, secret: bytes) -> Signer:
        return cls("HS256", secret, secret)

    @classmethod
    def rs256(cls, key_file: str, cert_file: str) -> Signer:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        with open(key_file, "rb") as f:
            key = f.read()
        with open(cert_file, "rb") as f:
            certs = x509.load_pem_x509_certificates(f.read())
        chain = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in certs]
        return cls("RS256", key, certs[0].public_key(), chain)

    def sign(self, claims: dict[str, object]) -> str:
        headers = {"x5c": self.chain} if self.chain else None
        return jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)

    def verify(self, token: str, *, audience: str, issuer: str) -> dict[str, object]:
        return jwt.decode(token, self._public, algorithms=[self.algorithm],  # type: ignore[arg-type]
                          audience=audience, issuer=issuer,
                          options={"require": ["exp", "iss", "aud", "sub"]})


def _signer(key: bytes | Signer) -> Signer:
    return key if isinstance(key, Signer) else Signer.hs256(key)


class TokenIssuer:
    """The token service's policy and signer: which account gets which actions."""

    def __init__(self, cfg: Config, signer: bytes | Signer, htpasswd: Htpasswd | None) -> None:
        self.cfg, self.signer, self.htpasswd = cfg, _signer(signer), htpasswd

    def authenticate(self, headers: Mapping[str, str]) -> str:
        creds = basic_credentials(headers)
        if creds is None:
            if headers.get("Authorization"):
                raise RegistryError("UNAUTHORIZED", "unsupported credentials")
            return ANONYMOUS
        if self.htpasswd is None or not self.htpasswd.check(*creds):
            raise RegistryError("UNAUTHORIZED", "invalid username or password", headers={
                "WWW-Authenticate": format_challenge("Basic", {"realm": self.cfg.realm})})
        return creds[0]

    def check_password(self, user: str, password: str) -> str:
        if not user or self.htpasswd is None or not self.htpasswd.check(user, password):
            raise RegistryError("UNAUTHORIZED", "invalid username or password")
        return user

    def refresh_token(self, account: str, service: str) -> str:
        """A long-lived token that only buys access tokens (never accepted by a registry:
        its audience is the token service itself)."""
        now = int(time.time())
        return self.signer.sign({"iss": self.cfg.token.issuer, "sub": account,
                                 "aud": _refresh_audience(service), "iat": now, "nbf": now - 1,
                                 "exp": now + REFRESH_EXPIRATION, "jti": uuid.uuid4().hex})

    def check_refresh(self, token: str) -> str:
        try:
            claims = self.signer.verify(token, audience=_refresh_audience(self.cfg.token.service),
                                        issuer=self.cfg.token.issuer)
        except jwt.PyJWTError:
            raise RegistryError("UNAUTHORIZED", "invalid refresh token") from None
        account = str(claims["sub"])
        if self.htpasswd is not None and not self.htpasswd.has_user(account):
            raise RegistryError("UNAUTHORIZED", "invalid refresh token")  # account removed
        return account

    def allowed_actions(self, account: str, scope: Scope) -> list[str]:
        if scope.type != REPOSITORY:
            return []
        rules = self.cfg.token.access or default_rules(self.cfg.anonymous_read)
        for rule in rules:
            if _account_matches(rule, account) and fnmatch.fnmatchcase(scope.name, rule.name):
                allowed = set(rule.actions)
                return [a for a in scope.actions if "*" in allowed or a in allowed]
        return []

    def issue(self, account: str, service: str, scopes: list[Scope]) -> dict[str, object]:
        now = int(time.time())
        access = []
        for s in scopes:
            granted = self.allowed_actions(account, s)
            access.append(Scope(s.type, s.name, tuple(granted)).to_access())
        claims = {"iss": self.cfg.token.issuer, "sub": account, "aud": service,
                  "exp": now + self.cfg.token.expiration, "nbf": now - 1, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        token = self.signer.sign(claims)
        return {"token": token, "access_token": token,
                "expires_in": self.cfg.token.expiration,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}


REFRESH_EXPIRATION = 30 * 24 * 3600


def _refresh_audience(service: str) -> str:
    return f"{service}#refresh"


def default_rules(anonymous_read: bool) -> list[AccessRule]:
    rules = [AccessRule("*", "*", ["*"])]
    if anonymous_read:
        rules.insert(0, AccessRule(ANONYMOUS, "*", [PULL]))
    return rules


def _account_matches(rule: AccessRule, account: str) -> bool:
    if rule.account == "*":
        return account != ANONYMOUS
    return rule.account == account


class TokenAuth(Authorizer):
    def __init__(self, cfg: Config, signer: bytes | Signer, realm: str) -> None:
        self.cfg, self.signer, self.realm = cfg, _signer(signer), realm

    def _challenge(self, need: list[Scope], error: str | None = None) -> RegistryError:
        params = {"realm": self.realm, "service": self.cfg.token.service}
        if need:
            params["scope"] = " ".join(str(s) for s in need)
        if error:
            params["error"] = error
        return RegistryError("UNAUTHORIZED", error, headers={
            "WWW-Authenticate": format_challenge("Bearer", params)})

    def authorize(self, headers: Mapping[str, str], need: list[Scope]) -> Identity:
        token = bearer_token(headers)
        if token is None:
            raise self._challenge(need)
        try:
            claims = self.signer.verify(token, audience=self.cfg.token.service,
                                        issuer=self.cfg.token.issuer)
        except jwt.PyJWTError:
            raise self._challenge(need, "invalid_token") from None
        granted = []
        for a in claims.get("access") or []:  # type: ignore[attr-defined]
            try:
                granted.append(Scope(str(a["type"]), str(a["name"]),
                                     tuple(str(x) for x in a["actions"])))
            except (KeyError, TypeError):
                raise self._challenge(need, "invalid_token") from None
        ident = Identity(str(claims["sub"]), granted)
        if not all(ident.allows(s) for s in need):
            raise self._challenge(need, "insufficient_scope")
        return ident


def token_secret(cfg: Config) -> bytes:
    """The HS256 key: the configured file, or one generated once under the storage root."""
    path = cfg.token.secret_file or os.path.join(cfg.root, "token.key")
    try:
        with open(path, "rb") as f:
            return f.read().strip()
    except FileNotFoundError:
        if cfg.token.secret_file:
            raise
    os.makedirs(os.path.dirname(path), exist_ok=True)
    key = secrets.token_hex(32).encode()
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    os.replace(tmp, path)
    return key


def token_signer(cfg: Config) -> Signer:
    if cfg.token.signing == "HS256":
        return Signer.hs256(token_secret(cfg))
    if cfg.token.key_file:
        return Signer.rs256(cfg.token.key_file, cfg.token.cert_file)
    key, cert, _ = token_ca(cfg.root)
    return Signer.rs256(key, cert)


def token_ca(root: str) -> tuple[str, str, str]:
    """RS256 material made once under `root`: a CA (token-ca.crt, the bundle another
    registry trusts) and a signing key with a certificate it issued. Returns the paths of
    the signing key, its certificate and the CA certificate."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    paths = tuple(os.path.join(root, n) for n in
                  ("token-signing.key", "token-signing.crt", "token-ca.crt"))
    if all(os.path.exists(p) for p in paths):
        return paths  # type: ignore[return-value]
    os.makedirs(root, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: rsa.RSAPrivateKey, issuer: x509.Name,
             signer: rsa.RSAPrivateKey, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1))
             .not_valid_after(now + datetime.timedelta(days=3650))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(
                 digital_signature=not ca, key_cert_sign=ca, crl_sign=ca,
                 content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, encipher_only=False, decipher_only=False),
                 critical=True))
        return b.sign(signer, hashes.SHA256())

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pallet registry token CA")])
    ca = cert("pallet registry token CA", ca_key, ca_name, ca_key, True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = cert("pallet registry token signer", key, ca_name, ca_key, False)
    pem = serialization.Encoding.PEM
    blobs = [key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()),
             leaf.public_bytes(pem), ca.public_bytes(pem)]
    for path, data in zip(paths, blobs, strict=True):
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return paths  # type: ignore[return-value]

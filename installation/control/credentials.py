"""Signing credentials for content credentials (C2PA): a local certificate authority and a
signing certificate issued by it, as a gallery without a public one makes them.

c2pa-python (c2pa-rs) refuses a self-signed signing certificate and one without the usages it
expects, so the pair is made the way the C2PA trust model wants it: a CA (CA:TRUE, keyCertSign)
that signs a leaf (CA:FALSE, keyUsage critical digitalSignature, extendedKeyUsage
emailProtection, subject and authority key identifiers), the key in PKCS#8, P-256 for ES256.
A reader that trusts the CA (`python run.py verify FILE` trusts the kept one) calls the
image's credentials trusted.

`python run.py credentials DIR` writes the four files; a show that names none gets Jadong's
own, made once in credentials/ (gitignored) and kept. The `cryptography` package is imported
inside the functions that need it: the control room stays light until a capture is signed.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from installation.show import PROJECT_ROOT

DEFAULT_DIR = PROJECT_ROOT / "credentials"
CA_FILE, CA_KEY_FILE = "ca.pem", "ca.key"
CERT_FILE, KEY_FILE = "signing.pem", "signing.key"
CA_YEARS, LEAF_YEARS = 20, 10  # a gallery's archive outlives a show; the leaf can be reissued from the CA


class CredentialsError(ValueError):
    """Signing material that cannot be made or used; the text names the file and what to do."""


@dataclass(frozen=True)
class Credentials:
    """What a signer needs: the certificate chain (signing certificate first, then its CA) and
    the private key, both PEM; `alg` is the C2PA algorithm for the key ("es256", "ps256" ...);
    `where` says where they came from, for messages."""

    chain: bytes
    key: bytes
    alg: str
    where: str
    subject: str = ""
    ca: bytes = b""  # the CA certificate (the chain's last), for a reader to trust


@dataclass(frozen=True)
class CredentialFiles:
    """The four files `make_credentials` writes."""

    ca: Path
    ca_key: Path
    certificate: Path  # the signing certificate, then the CA: the chain a signer embeds
    key: Path

    @classmethod
    def in_folder(cls, folder: Path) -> CredentialFiles:
        return cls(folder / CA_FILE, folder / CA_KEY_FILE, folder / CERT_FILE, folder / KEY_FILE)


def _name(common_name: str, organisation: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:64])])


def _key_usage(*, sign: bool, cert_sign: bool):
    from cryptography import x509

    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


def _write_private(path: Path, data: bytes) -> None:
    """A private key, readable by this user only, written whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def make_credentials(folder: Path, organisation: str = "Jadong", *, overwrite: bool = False) -> CredentialFiles:
    """Write a local CA and a signing certificate it issued into `folder` (see the module note).
    Refuses to replace existing files unless `overwrite`: images signed before would no longer
    verify against a new CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    files = CredentialFiles.in_folder(folder)
    existing = [p for p in (files.ca, files.ca_key, files.certificate, files.key) if p.exists()]
    if existing and not overwrite:
        raise CredentialsError(f"{existing[0]} already exists: images signed with it would no longer verify against a "
                               "new CA; choose an empty folder (or move the old files away first)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    except OSError as exc:
        raise CredentialsError(f"cannot create the folder {folder}: {exc.strerror or exc}") from None
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(hours=1)  # a clock a little behind must not make the leaf "not yet valid"
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{organisation} local CA", organisation)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_key_usage(sign=False, cert_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name(f"{organisation} capture signing", organisation))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(now + datetime.timedelta(days=365 * LEAF_YEARS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(sign=True, cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    try:
        _write_private(files.ca_key, ca_key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
        _write_private(files.key, key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
        _write_public(files.ca, ca.public_bytes(pem))
        _write_public(files.certificate, leaf.public_bytes(pem) + ca.public_bytes(pem))
    except OSError as exc:
        raise CredentialsError(f"cannot write the credentials into {folder}: {exc.strerror or exc}") from None
    return files


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CredentialsError(f"{what} {path} does not exist (`python run.py credentials DIR` makes a pair)") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        raise CredentialsError(f"{what} {path} is not a PEM file (expected -----BEGIN ... lines)")
    return data


def _algorithm(key, where: Path) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in algs:
            return algs[key.curve.name]
        raise CredentialsError(f"{where}: the curve {key.curve.name} cannot sign C2PA; use P-256, P-384 or P-521")
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise CredentialsError(f"{where}: a {type(key).__name__} cannot sign C2PA; use an EC P-256 key")


def load_credentials(certificate: Path, key: Path) -> Credentials:
    """The certificate chain and key a show names, checked as far as a signer will: both PEM,
    the key the certificate's, the signing certificate not a CA, not expired, and a CA after it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    chain_pem = _read(certificate, "[provenance] certificate")
    key_pem = _read(key, "[provenance] key")
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise CredentialsError(f"[provenance] certificate {certificate} holds no readable certificate: {exc}") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CredentialsError(f"[provenance] key {key} is not an unencrypted private key: {exc}") from None
    alg = _algorithm(private, key)
    leaf = chain[0]
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CredentialsError(f"{certificate} starts with a CA certificate: put the signing certificate first "
                                   "(C2PA refuses to sign with a CA)")
    except x509.ExtensionNotFound:
        pass
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*pub) != private.public_key().public_bytes(*pub):
        raise CredentialsError(f"[provenance] key {key} does not belong to the certificate in {certificate}")
    now = datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_after_utc < now:
        raise CredentialsError(f"the signing certificate in {certificate} expired on "
                               f"{leaf.not_valid_after_utc:%Y-%m-%d}; make a new pair with "
                               "`python run.py credentials DIR`")
    if len(chain) < 2:
        raise CredentialsError(f"{certificate} holds only the signing certificate: append its CA certificate "
                               "(C2PA refuses a chain without its issuer)")
    # PKCS#8 is what the signer reads: re-encode whatever form the key came in.
    pkcs8 = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    subject = leaf.subject.rfc4514_string()
    return Credentials(chain=chain_pem, key=pkcs8, alg=alg, where=str(certificate), subject=subject,
                       ca=chain[-1].public_bytes(serialization.Encoding.PEM))


def own_credentials(folder: Path = DEFAULT_DIR) -> tuple[Credentials, bool]:
    """Jadong's own credentials in `folder`, made there on first use: (credentials, made now)."""
    files = CredentialFiles.in_folder(folder)
    made = False
    if not (files.certificate.is_file() and files.key.is_file()):
        make_credentials(folder)  # refuses to replace a CA that is there: what it signed must still verify
        made = True
    return load_credentials(files.certificate, files.key), made


def trust_anchors(paths: list[Path]) -> bytes:
    """The PEM certificates in `paths`, joined: what a reader is told to trust."""
    return b"".join(_read(p, "trust anchor") for p in paths)

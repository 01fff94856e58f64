"""Ed25519 signatures over a version's manifest digest.

A signature covers the manifest digest, which covers every file's digest and every tensor's BLAKE3
digest: verifying it (and then loading, which re-verifies every tensor) proves the bytes are the ones
the key holder signed. Keys are standard PEM (PKCS#8 private, SubjectPublicKeyInfo public) from the
``cryptography`` package; ``generate_keypair`` writes a pair for operators without a PKI.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from llmops.errors import InvalidInput

CONTEXT = b"llmops-manifest-v1:"


def _message(manifest_digest: str) -> bytes:
    return CONTEXT + manifest_digest.encode()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise InvalidInput(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{path}: not an Ed25519 key; generate one with `llmops models keygen`")
    return key


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def sign(manifest_digest: str, key: Ed25519PrivateKey) -> tuple[str, str]:
    """(signature hex, public key hex)."""
    return key.sign(_message(manifest_digest)).hex(), public_hex(key.public_key())


def verify(manifest_digest: str, signature_hex: str, public_key_hex: str) -> bool:
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        public.verify(bytes.fromhex(signature_hex), _message(manifest_digest))
    except (ValueError, InvalidSignature):
        return False
    return True


def generate_keypair(private_path: Path) -> str:
    """Write a new private key (mode 600) and its public key next to it; returns the public key hex."""
    key = Ed25519PrivateKey.generate()
    private_path = Path(private_path)
    if private_path.exists():
        raise InvalidInput(f"{private_path} exists; refusing to overwrite a key")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private_path.touch(mode=0o600)
    private_path.write_bytes(pem)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path.with_suffix(".pub.pem").write_bytes(public_pem)
    return public_hex(key.public_key())

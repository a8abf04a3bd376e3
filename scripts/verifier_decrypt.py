#!/usr/bin/env python3
"""Decrypts a cak-ecies-v1 package with a CAK private key (Verifier recipe, docs/crypto.md).

Usage: verifier_decrypt.py <secp256r1|secp256k1> <private key hex> <package file | -> [--base64]
       verifier_decrypt.py --vectors test/vectors/cak-ecies-v1.json   (checks every committed vector)
Needs: pip install cryptography
"""
import base64
import json
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.exceptions import InvalidTag

CURVES = {"secp256r1": ec.SECP256R1(), "secp256k1": ec.SECP256K1()}
# Field prime and curve coefficients, to rebuild y of the shared point from its x.
PARAMS = {
    "secp256r1": (2**256 - 2**224 + 2**192 + 2**96 - 1, -3,
                  0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B),
    "secp256k1": (2**256 - 2**32 - 977, 0, 7),
}


def decrypt(curve: str, private_hex: str, package: bytes) -> bytes:
    if len(package) < 97:
        raise ValueError("package too short")
    ephemeral, nonce, tag, ciphertext = package[:65], package[65:81], package[81:97], package[97:]
    private_key = ec.derive_private_key(int(private_hex, 16), CURVES[curve])
    peer = ec.EllipticCurvePublicKey.from_encoded_point(CURVES[curve], ephemeral)  # validates the point
    x = private_key.exchange(ec.ECDH(), peer)  # x of the shared point only
    # The KDF needs the whole shared point. y is one of two square roots (p = 3 mod 4); the wrong
    # one yields a key whose tag check fails, so try both.
    p, a, b = PARAMS[curve]
    xi = int.from_bytes(x, "big")
    y = pow((xi**3 + a * xi + b) % p, (p + 1) // 4, p)
    for yi in (y, p - y):
        shared = b"\x04" + x + yi.to_bytes(32, "big")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"").derive(ephemeral + shared)
        try:
            return AESGCM(key).decrypt(nonce, ciphertext + tag, None)
        except InvalidTag:
            continue
    raise ValueError("package failed authentication")


def check_vectors(path: str) -> None:
    vectors = json.load(open(path))
    count = 0
    for group in vectors["curves"]:
        for v in group["encrypt"]:
            got = decrypt(group["curve"], group["recipientPrivateKey"], bytes.fromhex(v["package"]))
            assert got == bytes.fromhex(v["plaintext"]), (group["curve"], v)
            count += 1
        for t in group["tampered"]:
            try:
                decrypt(group["curve"], group["recipientPrivateKey"], bytes.fromhex(t["package"]))
            except ValueError:
                count += 1
                continue
            raise AssertionError(f"tampered package opened: {t['comment']}")
    print(f"python cryptography: {count} vector checks passed")


if __name__ == "__main__":
    if sys.argv[1] == "--vectors":
        check_vectors(sys.argv[2])
        sys.exit(0)
    curve, private_hex, source = sys.argv[1:4]
    data = sys.stdin.buffer.read() if source == "-" else open(source, "rb").read()
    if "--base64" in sys.argv:
        data = base64.b64decode(data)
    sys.stdout.buffer.write(decrypt(curve, private_hex, data))

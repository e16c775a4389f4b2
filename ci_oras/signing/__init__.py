"""Notary Project signatures: making them, checking them, and deciding whether to trust them.

- :mod:`~ci_oras.signing.keys` — a signing key and its certificate chain from PEM, and the algorithm the key
  implies (RSA 2048/3072/4096 → PS256/384/512, ECDSA P-256/384/521 → ES256/384/512);
- :mod:`~ci_oras.signing.envelope` — the JWS and COSE_Sign1 envelopes of the Notary Project signature
  specification v1.1: build and sign one, parse one and check its integrity;
- :mod:`~ci_oras.signing.certs` — the certificate requirements of that specification (chain structure, key
  usage, validity at a given time), all through ``cryptography``;
- :mod:`~ci_oras.signing.policy` — the trust policy document (version 1.0) and the trust store layout that
  notation uses, and the evaluation of one signature against them with the level's semantics.

This layer does no network or registry I/O: it is handed bytes and returns verdicts, so the same code
serves ``sign``, ``attach-signature`` and ``verify``. ``cryptography`` is imported only here, and only
modules that sign or verify import this package, so commands that never touch a signature start without it.
"""

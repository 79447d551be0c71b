"""Signed run evidence (DESIGN §8).

``dsse`` (envelopes), ``signing`` (Ed25519 key files, AWS KMS P-256, trusted keys), ``attestation``
(the in-toto Statement), ``approvals`` (ledger entries), ``bundle`` (the deterministic ``tar.gz``
writer), ``verify`` (the offline verifier), ``hashing`` (streaming SHA-256), ``lock_redaction``
(secrets in ``inputs.lock``).
"""

"""Signatures over everything that decides what a BPF artifact runs.

* ``sigbpf.sign.keys``     make (keygen), load (PEM or DER) and check RSA keys and X.509 certificates.
* ``sigbpf.sign.pkcs7``    detached PKCS#7/CMS signatures in the kernel's format: make, parse, verify.
* ``sigbpf.sign.payload``  the signed bytes: per-program instructions, the metadata blob, the two layouts.
* ``sigbpf.sign.signed``   signed artifacts: the signature section, ``sign_artifact``.
* ``sigbpf.sign.verify``   ``verify_signed``: verification in userspace (used by ``verify`` and ``load``).

Nothing is imported here: ``cryptography`` and ``asn1crypto`` load only when a
signing module is used, so ``import sigbpf.sign`` stays cheap.
"""

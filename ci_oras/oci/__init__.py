"""Pure OCI data: media types, digests, descriptors, manifests and references. No I/O lives here."""

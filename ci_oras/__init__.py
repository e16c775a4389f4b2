"""ci-oras: supply-chain steps for CI/CD pipelines on OCI registries."""

__version__ = "0.1.0"

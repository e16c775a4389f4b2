"""Talking to remote registries: transport, authentication, credentials and the referrers API."""

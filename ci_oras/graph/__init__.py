"""Graph algorithms over the store protocols: discover (and, later, copy and delete). No HTTP here."""

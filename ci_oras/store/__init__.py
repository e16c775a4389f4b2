"""Where content lives: OCI layouts on disk and remote registry repositories, behind one set of protocols."""

"""How results leave the process: the JSON document on stdout, human text on stderr (platform channels later)."""

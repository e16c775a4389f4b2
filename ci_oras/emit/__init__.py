"""How results leave the process: the JSON document on stdout, human text on stderr, and the CI platform's
side channels (``--emit``: ``channel``, ``outputs``, ``summary``, ``github``, ``gitlab``, ``azure``)."""

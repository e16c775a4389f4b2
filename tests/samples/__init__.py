"""Sample SBOMs and signatures, generated at test time (see :mod:`samples.make_samples`)."""

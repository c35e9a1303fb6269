"""Files and units of work, never pixels: the run loop, manifests, sharding, atomic writes, fingerprints,
input discovery, parallel."""

"""Studies built on the protocol: sample efficiency, prefix length, prefix initialisation, attention analysis."""

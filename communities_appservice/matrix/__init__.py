"""Everything that speaks Matrix: the gateway (outgoing), the server and router (incoming)."""

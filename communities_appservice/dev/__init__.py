"""Developer tools, not part of the running service: a throw-away Synapse and the demo."""

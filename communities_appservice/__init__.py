"""WhatsApp-style Communities for any Matrix homeserver, as an application service."""

__version__ = "0.1.0"

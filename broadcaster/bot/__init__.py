"""The broadcast bot: pipeline assembly, speaker gate, responder, republisher, captions."""

"""Drivers above the stream core: the batcher every command runs its streams through, the synchronous captioner, offline transcription."""

"""What every layer of edgeplace may import: the user-facing error type, where state lives, the progress
callback type. It imports nothing of the project."""

"""Where transfers run: threads in the embedded process, or workers on many machines."""

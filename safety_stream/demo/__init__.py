"""The main job in one command: a simulated SPARKLE-L trial posting to a live embedded runtime."""

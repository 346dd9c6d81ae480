"""The projection: the trial state folded from the log, and how it is kept up to date."""

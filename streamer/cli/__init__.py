"""The `streamer` command line."""

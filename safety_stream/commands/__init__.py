"""The ``safety-stream`` subcommands, one module each; ``safety_stream.cli`` wires them."""

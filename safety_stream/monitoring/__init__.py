"""Safety monitoring: stopping boundaries, rule evaluation and the derived events it emits."""

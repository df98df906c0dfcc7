"""The ``rllib-trl`` command line: train (classic RLlib YAML through Tune), evaluate, plot."""

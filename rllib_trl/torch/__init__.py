"""PyTorch parts of the TRPL algorithm: distributions, RL module, learner."""

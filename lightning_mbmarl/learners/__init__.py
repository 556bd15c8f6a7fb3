"""Learners: plain ``nn.Module`` networks and pure loss functions, usable on real or imagined batches."""

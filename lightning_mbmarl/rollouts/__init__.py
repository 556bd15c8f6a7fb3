"""Rollouts of policies inside learned world models."""

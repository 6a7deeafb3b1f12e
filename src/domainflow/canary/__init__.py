"""Canary promotion: a rollout plan, live analysis against the champion, a resumable controller."""

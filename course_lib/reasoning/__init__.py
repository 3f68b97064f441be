"""Reasoning with a small model trained in the course: tasks with worked steps, sampling many
paths, reading and voting on their answers (self-consistency)."""
from .voting import Answer, Vote, consensus_vote, extract_answer, majority_vote, weighted_vote

__all__ = ["Answer", "Vote", "consensus_vote", "extract_answer", "majority_vote", "weighted_vote"]

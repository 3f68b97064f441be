"""course_lib: planning, reinforcement learning and world models that run on GPUs.

The course's one implementation of each algorithm and primitive. Start with
``python -m course_lib train ppo --env CartPole-v1`` or the notebooks.
"""
__version__ = "0.1.0"

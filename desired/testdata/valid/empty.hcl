# want:
# A state that declares nothing is valid (the planner decides whether acting
# on it is safe).

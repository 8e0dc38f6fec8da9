"""Training recipes: Bradley-Terry reward models (``bt``)."""

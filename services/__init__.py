"""Business rules of Tuan. Nothing here imports aiogram: services take an AsyncSession,
flush but never commit, and raise domain errors that handlers turn into localized text."""

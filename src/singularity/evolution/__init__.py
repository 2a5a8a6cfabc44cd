"""Strategy synthesis by strongly typed genetic programming (DEAP)."""

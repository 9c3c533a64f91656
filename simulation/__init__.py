"""Closed-loop simulation: shoppers who react to what a recommender shows them."""

"""The benchmark (`make bench`): a generator of realistic exports, syncd end to end, and the database's own baselines."""
